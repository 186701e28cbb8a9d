//! The `people` fixture the COPY and dump benches share: a throwaway
//! PostgreSQL holding one table of 8 columns, 4 of them classified, a
//! guarded login role allowed to read it, and a pseudonymization key file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use copyguard::devdb::{DevDb, DevDbOptions};
use tempfile::TempDir;

use crate::env::env_count;

/// The superuser's production class, then `{}` (a bench's guarded class),
/// then the fixture's 4 classified columns and their categories.
const POLICY: &str = r#"
[classes.production]
mode = "production"
roles = ["postgres"]
{}
[columns]
"public.people.email" = "email"
"public.people.full_name" = "person_name"
"public.people.birth_date" = "date_of_birth"
"public.people.phone" = "phone"
"#;

/// A loaded fixture. Dropping it removes the work directory; call
/// [`stop`](Self::stop) to stop the cluster first.
pub struct People {
    /// Temporary files (policy, key, audit log, dumps).
    pub work: TempDir,
    pub db: DevDb,
    /// Rows in `people` (`COPYGUARD_BENCH_ROWS`, default 1,000,000).
    pub rows: u64,
    /// Rounds to run (`COPYGUARD_BENCH_ROUNDS`, default 3).
    pub rounds: u64,
    /// The pseudonymization key file (a fixed key).
    pub key: PathBuf,
}

impl People {
    /// Starts a cluster, creates `database` with `people` and the login
    /// role `role` (password `password`) that may read it.
    pub fn load(database: &str, role: &str, password: &str) -> Result<People> {
        let rows = env_count("COPYGUARD_BENCH_ROWS", 1_000_000)?;
        let rounds = env_count("COPYGUARD_BENCH_ROUNDS", 3)?;
        let work = tempfile::Builder::new()
            .prefix(&format!("copyguard-{database}-"))
            .tempdir()
            .context("creating a temporary directory")?;
        let db =
            DevDb::start(DevDbOptions::default()).context("starting a throwaway PostgreSQL")?;
        db.psql("postgres", &format!("CREATE DATABASE {database};"))?;
        println!("loading {rows} rows of 8 columns (4 classified)");
        db.psql(
            database,
            &format!(
                "CREATE TABLE people (id int8 PRIMARY KEY, email text NOT NULL, full_name text,
                     birth_date date, phone text, country text, score int4, note text);
                 INSERT INTO people
                 SELECT g, lower(f) || '.' || lower(l) || (h1 % 1000) || '@' || d,
                     f || ' ' || l, date '1950-01-01' + h2 % 20000,
                     '+33-6-' || lpad((h3 % 100000000)::text, 8, '0'),
                     (ARRAY['FR','DE','ES','IT'])[1 + h1 % 4], h2 % 1000,
                     'order ' || substr(md5(g::text), 1, 12)
                   FROM (SELECT g, h1, h2, h3,
                             (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances',
                                    'John','Margaret','Ken','Radia','Linus'])[1 + h1 % 12] AS f,
                             (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth',
                                    'Allen','Backus','Hamilton','Thompson','Perlman','Torvalds',
                                    'Ritchie','Wirth','Codd','Stonebraker'])[1 + h2 % 16] AS l,
                             (ARRAY['mail.example.com','example.org','post.example.net',
                                    'inbox.example.fr'])[1 + h3 % 4] AS d
                           FROM (SELECT g,
                                     ('x' || substr(md5(g::text), 1, 7))::bit(28)::int AS h1,
                                     ('x' || substr(md5(g::text), 9, 7))::bit(28)::int AS h2,
                                     ('x' || substr(md5(g::text), 17, 7))::bit(28)::int AS h3
                                   FROM generate_series(1, {rows}) g) hashed) named;
                 CREATE ROLE {role} LOGIN PASSWORD '{password}';
                 GRANT SELECT ON people TO {role};
                 ANALYZE people;"
            ),
        )
        .context("loading the table")?;
        let key = work.path().join("pseudonym.key");
        std::fs::write(&key, "5f".repeat(32))?;
        Ok(People {
            work,
            db,
            rows,
            rounds,
            key,
        })
    }

    /// A policy file: the production class, `guarded` (a guarded class
    /// as TOML), and the fixture's classified columns.
    pub fn policy(guarded: &str) -> String {
        POLICY.replace("{}", guarded)
    }

    /// Stops the cluster and removes the work directory.
    pub fn stop(self) {
        self.db.stop();
    }
}

/// Runs a bench's body: its error, if any, printed under the bench's name.
pub fn main_of(name: &str, run: impl FnOnce() -> Result<()>) -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The median of `v` (the upper one of an even count; NaN when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// CPU time (user and system) of the processes of one PostgreSQL server.
pub struct ServerCpu {
    postmaster: String,
}

/// Clock ticks of CPU per process of a server, at one moment.
pub struct Ticks(std::collections::HashMap<String, u64>);

impl Ticks {
    /// CPU seconds since `before`, over the processes alive now (one that
    /// started since counts whole; one that ended counts through the
    /// postmaster's children total, whole, so measure a backend alive at
    /// `before` before it ends).
    pub fn since(&self, before: &Ticks) -> f64 {
        self.0
            .iter()
            .map(|(pid, &t)| t.saturating_sub(before.0.get(pid).copied().unwrap_or(0)))
            .sum::<u64>() as f64
            / clock_ticks()
    }
}

impl ServerCpu {
    pub fn of(db: &DevDb) -> Result<ServerCpu> {
        let pid = std::fs::read_to_string(db.data_dir().join("postmaster.pid"))
            .context("reading postmaster.pid")?;
        let postmaster = pid.lines().next().unwrap_or_default().trim().to_string();
        Ok(ServerCpu { postmaster })
    }

    /// The CPU time so far of the postmaster and each of its children.
    pub fn server(&self) -> Ticks {
        self.ticks(true)
    }

    /// [`server`](Self::server) without the postmaster's count of children
    /// that ended: only processes alive now. A backend of an earlier
    /// connection that exits during a measurement would otherwise count
    /// whole in it.
    #[allow(dead_code)] // not every bench runs several connections in turn
    pub fn live(&self) -> Ticks {
        self.ticks(false)
    }

    fn ticks(&self, ended: bool) -> Ticks {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Ticks(Default::default());
        };
        let ticks = procs
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
            .filter_map(|stat| {
                // After the command name in parentheses: state, ppid, ... ;
                // utime and stime are fields 14 and 15 of the whole line,
                // cutime and cstime (children waited for) 16 and 17: the
                // postmaster's count the backends that ended, such as a
                // pg_dump's.
                let (pid, rest) = stat.split_once(" (")?;
                let fields: Vec<&str> = rest.rsplit_once(") ")?.1.split(' ').collect();
                let postmaster = pid == self.postmaster;
                let mine = postmaster || fields.get(1)? == &self.postmaster;
                let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
                let mut ticks = field(11)? + field(12)?;
                if postmaster && ended {
                    ticks += field(13)? + field(14)?;
                }
                mine.then(|| (pid.to_string(), ticks))
            })
            .collect();
        Ticks(ticks)
    }
}

/// This process's CPU seconds (user and system) so far.
pub fn own_cpu() -> f64 {
    rusage(libc::RUSAGE_SELF)
}

/// CPU seconds (user and system) so far of this process's children that
/// ended and were waited for.
pub fn children_cpu() -> f64 {
    rusage(libc::RUSAGE_CHILDREN)
}

fn rusage(who: libc::c_int) -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}
