//! A throwaway PostgreSQL server for the tests: initdb and postgres from Debian's packages
//! (/usr/lib/postgresql/*/bin), in a temporary directory, on a loopback port, trust
//! authentication. As root it runs as the `postgres` user (PostgreSQL refuses root). It stops
//! when its owner drops it, or when the test process exits however it exits: a small shell
//! between us and the server waits on a pipe from this process and stops the server (and, for
//! the shared one, removes its directory) when the pipe closes.
//!
//! Never skipped: without PostgreSQL the tests fail and say how to install it.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct PgServer {
    pub port: u16,
    bin: PathBuf,
    /// Holds the data directory and the socket directory; removed on drop.
    dir: Option<tempfile::TempDir>,
    kept_dir: PathBuf,
    watchdog: Option<Child>,
    remove_on_exit: bool,
}

/// The newest /usr/lib/postgresql/N/bin that has initdb and postgres.
pub fn pg_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): the collector's \
             PostgreSQL tests need it; run scripts/install-deps.sh"
        ),
    }
}

pub fn is_root() -> bool {
    // The real uid, from /proc (no libc dependency for one call).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A command as the user PostgreSQL runs as: `postgres` when we are root, else ourselves.
fn as_pg_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--clear-groups",
            "--reset-env",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl PgServer {
    /// initdb and start a server; `remove_on_exit` removes its files when the process exits
    /// (for the server shared by a test binary, which is never dropped).
    pub fn start(remove_on_exit: bool) -> PgServer {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("vpce-collector-pg-")
            .tempdir()
            .expect("tempdir");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "chown postgres: is the postgres user there? run scripts/install-deps.sh"
            );
        }
        let out = as_pg_user(&bin.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .arg("-D")
            .arg(dir.path().join("data"))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kept_dir = dir.path().to_path_buf();
        let mut server = PgServer {
            port: 0,
            bin,
            dir: Some(dir),
            kept_dir,
            watchdog: None,
            remove_on_exit,
        };
        server.run();
        server
    }

    /// Starts postgres on the data directory (again, after `stop`).
    pub fn run(&mut self) {
        for _ in 0..5 {
            let port = if self.port == 0 {
                free_port()
            } else {
                self.port
            };
            let data = self.kept_dir.join("data");
            let script = r#"
                remove=$1; shift
                "$@" &
                pid=$!
                read _ignored
                kill -QUIT "$pid" 2>/dev/null
                wait "$pid"
                if [ -n "$remove" ]; then rm -rf "$remove"; fi
            "#;
            let remove = if self.remove_on_exit {
                self.kept_dir.clone()
            } else {
                PathBuf::new()
            };
            let mut cmd = as_pg_user(Path::new("/bin/sh"));
            cmd.arg("-c")
                .arg(script)
                .arg("pg-watchdog")
                .arg(remove)
                .arg(self.bin.join("postgres"))
                .arg("-D")
                .arg(&data)
                .arg("-k")
                .arg(&self.kept_dir)
                .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
                // Throwaway data: no fsync, so the tests spend their time in the collector.
                .args(["-c", "fsync=off", "-c", "max_connections=200"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().expect("start postgres");
            if wait_until_up(port, &mut child) {
                self.port = port;
                self.watchdog = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("PostgreSQL did not start (5 tries); see its messages above");
    }

    /// Stops the server (immediate shutdown, as a crash would); `run` starts it again.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.watchdog.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.kept_dir.join("data")
    }

    /// Runs SQL with psql as the superuser; returns its output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-X", "-q", "-A", "-t"])
            .args([
                "-p",
                &self.port.to_string(),
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new, empty database; returns its URL.
    pub fn new_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }
}

fn wait_until_up(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            eprintln!("[postgres] exited: {err}");
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // Accepting TCP is not yet accepting queries: wait for a real answer.
            let ready = Command::new(pg_bin().join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                // Its log goes on to our stderr, where the test output shows it.
                if let Some(e) = child.stderr.take() {
                    std::thread::spawn(move || {
                        use std::io::BufRead;
                        for line in std::io::BufReader::new(e).lines().map_while(Result::ok) {
                            eprintln!("[postgres] {line}");
                        }
                    });
                }
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        drop(self.dir.take());
    }
}

/// The server a test binary's PostgreSQL tests share (one database each); it stops when the
/// test process exits.
pub fn shared() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut s = PgServer::start(true);
        // Never dropped: the directory goes with the watchdog at exit instead.
        if let Some(dir) = s.dir.take() {
            let _ = dir.keep();
        }
        s
    })
}
