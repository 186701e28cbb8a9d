# Build stage: compile copyguard in release mode.
FROM rust:1-slim-bookworm AS build
# make builds jemalloc, the allocator copyguard runs on.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
RUN cargo build --release --locked --bin copyguard

# Runtime stage: the binary alone, as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin copyguard \
    && mkdir -p /var/lib/copyguard/audit \
    && chown copyguard /var/lib/copyguard/audit
COPY --from=build /src/target/release/copyguard /usr/local/bin/copyguard
COPY policies /etc/copyguard/policies
USER copyguard
ENV COPYGUARD_LISTEN=0.0.0.0:6432 \
    COPYGUARD_ADMIN=0.0.0.0:9187 \
    COPYGUARD_AUDIT_PATH=/var/lib/copyguard/audit/copyguard-audit.log
VOLUME ["/var/lib/copyguard/audit"]
EXPOSE 6432 9187
ENTRYPOINT ["copyguard", "serve"]
