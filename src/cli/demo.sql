-- Sample data for `copyguard demo`: an online shop whose production
-- database holds personal data of the kind behind real leaks.

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    birth_date  date NOT NULL,
    phone       text,
    country     char(2) NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE orders (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id),
    amount_cents  integer NOT NULL,
    status        text NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE TABLE identity_documents (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id),
    doc_type    text NOT NULL,
    doc_number  text NOT NULL UNIQUE,
    issued_on   date NOT NULL,
    expires_on  date NOT NULL
);

INSERT INTO users (email, full_name, birth_date, phone, country, created_at)
SELECT n.first || '.' || n.last || g || '@Example.com',
       n.first || ' ' || n.last,
       date '1950-01-01' + (g * 7919) % 20000,
       '+33 6 ' || lpad(((g * 48271) % 100000000)::text, 8, '0'),
       (ARRAY['FR', 'DE', 'ES', 'IT', 'NL'])[1 + g % 5],
       timestamptz '2024-01-01 00:00:00+00' + g * interval '7 hours'
FROM generate_series(1, 1000) AS g,
     LATERAL (SELECT (ARRAY['Alice', 'Bruno', 'Chloe', 'David', 'Emma', 'Farid',
                            'Giulia', 'Hugo', 'Ines', 'Jonas'])[1 + g % 10] AS first,
                     (ARRAY['Martin', 'Bernard', 'Dubois', 'Thomas', 'Robert', 'Richard',
                            'Petit', 'Durand', 'Leroy', 'Moreau', 'Simon', 'Laurent'])[1 + (g * 7) % 12] AS last) AS n;

INSERT INTO orders (user_id, amount_cents, status, created_at)
SELECT 1 + (g * 31) % 1000,
       500 + (g * 7717) % 50000,
       (ARRAY['paid', 'shipped', 'refunded', 'cancelled'])[1 + g % 4],
       timestamptz '2024-06-01 00:00:00+00' + g * interval '41 minutes'
FROM generate_series(1, 5000) AS g;

INSERT INTO identity_documents (user_id, doc_type, doc_number, issued_on, expires_on)
SELECT g,
       (ARRAY['passport', 'id_card', 'driving_licence'])[1 + g % 3],
       upper(substr(md5('doc' || g), 1, 2)) || lpad(((g * 104729) % 10000000)::text, 7, '0'),
       date '2015-01-01' + (g * 13) % 3000,
       date '2015-01-01' + (g * 13) % 3000 + 3652
FROM generate_series(1, 1000) AS g;

ANALYZE;

CREATE ROLE app_prod LOGIN PASSWORD 'prod-secret';
CREATE ROLE dev_alice LOGIN PASSWORD 'dev-secret';
CREATE ROLE qa_bob LOGIN PASSWORD 'qa-secret';
GRANT SELECT ON ALL TABLES IN SCHEMA public TO qa_bob;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_prod, dev_alice;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO app_prod, dev_alice;
