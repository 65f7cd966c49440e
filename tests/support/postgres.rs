//! A PostgreSQL server for the tests of one test binary, and a fresh database per test.
//!
//! With `SEADRAGON_TEST_DATABASE_URL` (a server where the tests may create and drop databases,
//! e.g. `postgres://postgres@127.0.0.1:5432/postgres`) the tests use that server. Otherwise the
//! first test to ask boots a private cluster from Debian's `postgresql` package: `initdb` in a
//! temporary directory, a free port on 127.0.0.1, the unix socket in that directory, as the
//! `postgres` user when running as root (initdb and postgres refuse root). A supervising shell
//! holds the test binary's end of a pipe: when the binary exits, however it exits, the shell
//! stops the cluster and removes its directory. Included by the library's unit tests and the
//! `api` integration tests, so each of those binaries boots at most one cluster.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// What to do when no server can be had.
const HOW_TO_GET_ONE: &str = "install Debian's `postgresql` package (apt-get install postgresql; \
     scripts/test.sh does), or set SEADRAGON_TEST_DATABASE_URL to a server where the tests may \
     create databases";

/// Longest wait for a booted cluster to accept connections.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Stops the cluster when the test binary's end of its stdin closes, with a bounded wait.
const SUPERVISOR: &str = r#"
dir=$1; shift
"$@" >"$dir/postgres.log" 2>&1 &
pid=$!
cat >/dev/null
kill -INT "$pid" 2>/dev/null
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$pid" 2>/dev/null
rm -rf "$dir"
"#;

/// The server the tests use: a URL with rights to create databases.
#[derive(Debug)]
struct Server {
    admin_url: String,
    /// The private cluster's supervisor, whose stdin is kept open until the binary exits.
    _supervisor: Option<Child>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

fn server() -> &'static Server {
    let server = SERVER.get_or_init(|| {
        #[allow(clippy::disallowed_methods)]
        match std::env::var("SEADRAGON_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Ok(Server {
                admin_url: url,
                _supervisor: None,
            }),
            _ => boot(),
        }
    });
    match server {
        Ok(server) => server,
        Err(why) => panic!("no PostgreSQL server for the tests: {why}"),
    }
}

/// The password in the URLs of the test databases. The private cluster trusts local
/// connections and never asks for it: it is there so that the suite's log check
/// (`scripts/log-secrets.py`) has a database password to look for in the logs.
const PASSWORD: &str = "sd-test-db-password-5c0f2e91";

/// Lists [`PASSWORD`] as a secret for the log check, once per test binary, when logs are kept
/// (`SEADRAGON_TEST_LOG_DIR`, see `tests/support/logs.rs`).
fn declare_password() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Some(dir) = std::env::var_os("SEADRAGON_TEST_LOG_DIR").filter(|d| !d.is_empty()) {
            let dir = std::path::PathBuf::from(dir);
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("postgres-{}.secrets", std::process::id()));
            let _ = std::fs::write(file, format!("password {PASSWORD}\n"));
        }
    });
}

/// A database of its own for one test, dropped with this value.
#[derive(Debug)]
pub struct TestDatabase {
    /// `postgres://…/seadragon_test_…`.
    pub url: String,
    name: String,
}

/// Creates an empty database on the test server.
pub async fn database() -> TestDatabase {
    let server = server();
    let name = format!("seadragon_test_{}", random_suffix().to_lowercase());
    let mut admin = PgConnection::connect(&server.admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"));
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
    let _ = admin.close().await;
    let mut url = reqwest::Url::parse(&server.admin_url).unwrap();
    url.set_path(&format!("/{name}"));
    if url.password().is_none() {
        url.set_password(Some(PASSWORD)).unwrap();
        declare_password();
    }
    TestDatabase {
        url: url.to_string(),
        name,
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (server().admin_url.clone(), self.name.clone());
        // Drop cannot await; a thread of its own works inside a test's runtime as well.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                admin.execute(AssertSqlSafe(sql)).await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

fn random_suffix() -> String {
    use rand::RngExt as _;
    let mut rng = rand::rng();
    (0..12)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// Boots the private cluster and waits until it accepts connections.
fn boot() -> Result<Server, String> {
    let bin = binaries()?;
    let as_root = command_output("id", &["-u"]).is_some_and(|uid| uid == "0");
    let dir = tempfile::Builder::new()
        .prefix("seadragon-pg-")
        .tempdir()
        .map_err(|e| format!("cannot make a temporary directory: {e}"))?
        // The supervisor removes it once the cluster has stopped.
        .keep();
    let data = dir.join("data");
    // As root, the tools run as the `postgres` user, which must own the directory.
    let user: &[&str] = if as_root {
        if !run(Command::new("chown").arg("postgres:postgres").arg(&dir)) {
            return Err(format!(
                "cannot give {} to the postgres user (does it exist? {HOW_TO_GET_ONE})",
                dir.display()
            ));
        }
        &[
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ]
    } else {
        &[]
    };
    let initdb = as_user(user, &bin.join("initdb"))
        .args(["--auth=trust", "--username=postgres", "--encoding=UTF8"])
        .args(["--locale=C", "--no-sync", "--no-instructions", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !initdb.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let mut supervisor = Command::new("sh");
    supervisor
        .args(["-c", SUPERVISOR, "sh"])
        .arg(&dir)
        .args(user)
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
        .arg(&dir)
        // A test server: durability is not the point, speed and many connections are.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut supervisor = supervisor
        .spawn()
        .map_err(|e| format!("cannot start postgres: {e}"))?;
    let started = Instant::now();
    while started.elapsed() < BOOT_TIMEOUT {
        if run(Command::new(bin.join("pg_isready")).args([
            "-q",
            "-h",
            "127.0.0.1",
            "-t",
            "1",
            "-p",
            &port.to_string(),
        ])) {
            return Ok(Server {
                admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                _supervisor: Some(supervisor),
            });
        }
        if let Ok(Some(_)) = supervisor.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
    drop(supervisor.stdin.take());
    Err(format!(
        "the private PostgreSQL cluster did not accept connections within {}s; its log:\n{log}",
        BOOT_TIMEOUT.as_secs()
    ))
}

/// The directory of `initdb`, `postgres` and `pg_isready`: the newest of Debian's
/// `/usr/lib/postgresql/<major>/bin`, else wherever `initdb` is on the `PATH`.
fn binaries() -> Result<PathBuf, String> {
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .max();
    if let Some((_, bin)) = debian {
        return Ok(bin);
    }
    command_output("sh", &["-c", "command -v initdb"])
        .and_then(|path| Path::new(&path).parent().map(Path::to_path_buf))
        .ok_or_else(|| {
            format!("PostgreSQL's server programs (initdb, postgres) are not installed: {HOW_TO_GET_ONE}")
        })
}

fn as_user(user: &[&str], program: &Path) -> Command {
    match user.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(program);
            command
        }
        None => Command::new(program),
    }
}

fn run(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
