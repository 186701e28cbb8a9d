// pgjdbc through copyguard: server-prepared statements (text, then binary
// after prepareThreshold), fetchSize cursors, DatabaseMetaData,
// CopyManager, refusals. Connection details and statements as in
// ../python/common.py; prints one JSON object.

import java.io.ByteArrayOutputStream;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.postgresql.PGConnection;
import org.postgresql.util.PSQLException;

public class PgJdbc {
    static final String ALL_USERS = "SELECT id, email, full_name, birth_date, phone, ssn, country, score FROM users ORDER BY id";
    static final String UNCLASSIFIED = "SELECT id, country, score FROM users ORDER BY id";
    static final String ORDERS_OF = "SELECT user_id, amount_cents, status FROM orders WHERE user_id = ? ORDER BY id";
    static final String COUNT_IN = "SELECT count(*) FROM users WHERE country = ?";
    static final String CLASSIFIED = "SELECT id, email, full_name, birth_date, phone FROM users WHERE id <= 5 ORDER BY id";
    static final String REFUSED = "SELECT doc_number FROM identity_documents";

    static Connection connect(String port, String user) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", user);
        p.setProperty("password", System.getenv("CG_PASSWORD"));
        p.setProperty("prepareThreshold", "2");
        String url = "jdbc:postgresql://" + System.getenv("CG_HOST") + ":" + port + "/" + System.getenv("CG_DB");
        return DriverManager.getConnection(url, p);
    }

    static List<Object> table(ResultSet rs) throws SQLException {
        List<Object> rows = new ArrayList<>();
        int n = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            List<Object> row = new ArrayList<>();
            for (int i = 1; i <= n; i++) row.add(rs.getString(i));
            rows.add(row);
        }
        rs.close();
        return rows;
    }

    static List<Object> prepared(Connection c, String sql, Object param) throws SQLException {
        try (PreparedStatement st = c.prepareStatement(sql)) {
            if (param != null) st.setObject(1, param);
            return table(st.executeQuery());
        }
    }

    static List<Object> reads(String port, String user, boolean prod) throws SQLException {
        List<Object> out = new ArrayList<>();
        try (Connection c = connect(port, user)) {
            String first = prod ? ALL_USERS : UNCLASSIFIED;
            // Three runs: unnamed, then server-prepared with binary results.
            for (int i = 0; i < 3; i++) {
                out.add(prepared(c, first, null));
                out.add(prepared(c, ORDERS_OF, prod ? 7 : 3));
            }
            if (!prod) out.add(prepared(c, COUNT_IN, "FR"));
            c.setAutoCommit(false);
            try (PreparedStatement st = c.prepareStatement(first)) {
                st.setFetchSize(7);
                out.add(table(st.executeQuery()));
            }
            c.commit();
            c.setAutoCommit(true);
            DatabaseMetaData md = c.getMetaData();
            List<Object> columns = new ArrayList<>();
            try (ResultSet rs = md.getColumns(null, "public", "orders", null)) {
                while (rs.next()) columns.add(List.of(rs.getString("COLUMN_NAME"), rs.getString("TYPE_NAME")));
            }
            out.add(columns);
            List<Object> keys = new ArrayList<>();
            try (ResultSet rs = md.getImportedKeys(null, "public", "orders")) {
                while (rs.next()) keys.add(List.of(rs.getString("PKTABLE_NAME"), rs.getString("FKCOLUMN_NAME")));
            }
            out.add(keys);
            List<Object> tables = new ArrayList<>();
            try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
            }
            out.add(tables);
        }
        return out;
    }

    static Map<String, Object> standins() throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        try (Connection c = connect(System.getenv("CG_TAP"), System.getenv("CG_DEV"))) {
            try (Statement st = c.createStatement()) {
                out.put("simple", table(st.executeQuery(CLASSIFIED)));
            }
            for (int i = 0; i < 3; i++) out.put("prepared" + i, prepared(c, CLASSIFIED, null));
            c.setAutoCommit(false);
            try (PreparedStatement st = c.prepareStatement(CLASSIFIED)) {
                st.setFetchSize(2);
                out.put("fetch_size", table(st.executeQuery()));
            }
            c.commit();
            c.setAutoCommit(true);
            ByteArrayOutputStream copied = new ByteArrayOutputStream();
            c.unwrap(PGConnection.class).getCopyAPI().copyOut("COPY (" + CLASSIFIED + ") TO STDOUT", copied);
            List<Object> rows = new ArrayList<>();
            for (String line : copied.toString("UTF-8").split("\n")) {
                if (!line.isEmpty()) rows.add(List.of((Object[]) line.split("\t", -1)));
            }
            out.put("copy", rows);
        }
        return out;
    }

    static Map<String, Object> refusals() throws SQLException {
        List<Object> steps = new ArrayList<>();
        String kind = null;
        try (Connection c = connect(System.getenv("CG_TAP"), System.getenv("CG_DEV"))) {
            kind = attempt(c, REFUSED, steps);
            attempt(c, "SELECT 'ok'", steps);
            c.setAutoCommit(false);
            attempt(c, REFUSED, steps);
            attempt(c, "SELECT 1", steps);
            c.rollback();
            attempt(c, "SELECT 'ok'", steps);
            c.setAutoCommit(true);
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("error_type", kind);
        out.put("steps", steps);
        return out;
    }

    /** Runs sql; records "ok" or the SQLSTATE; returns the exception's class name. */
    static String attempt(Connection c, String sql, List<Object> steps) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            steps.add("ok");
            return null;
        } catch (PSQLException e) {
            steps.add(e.getSQLState());
            return e.getClass().getSimpleName();
        }
    }

    static String json(Object v) {
        if (v == null) return "null";
        if (v instanceof String) {
            StringBuilder b = new StringBuilder("\"");
            for (char ch : ((String) v).toCharArray()) {
                if (ch == '"' || ch == '\\') b.append('\\').append(ch);
                else if (ch < 0x20) b.append(String.format("\\u%04x", (int) ch));
                else b.append(ch);
            }
            return b.append('"').toString();
        }
        if (v instanceof List) {
            List<String> items = new ArrayList<>();
            for (Object o : (List<?>) v) items.add(json(o));
            return "[" + String.join(",", items) + "]";
        }
        if (v instanceof Map) {
            List<String> items = new ArrayList<>();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) items.add(json(e.getKey().toString()) + ":" + json(e.getValue()));
            return "{" + String.join(",", items) + "}";
        }
        return json(v.toString());
    }

    public static void main(String[] args) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("version", org.postgresql.util.DriverInfo.DRIVER_VERSION);
        out.put("a_direct", reads(System.getenv("CG_DIRECT"), System.getenv("CG_PROD"), true));
        out.put("a_proxy", reads(System.getenv("CG_PROXY"), System.getenv("CG_PROD"), true));
        out.put("b_direct", reads(System.getenv("CG_DIRECT"), System.getenv("CG_DEV"), false));
        out.put("b_guarded", reads(System.getenv("CG_TAP"), System.getenv("CG_DEV"), false));
        out.put("c", standins());
        out.put("d", refusals());
        System.out.println(json(out));
    }
}
