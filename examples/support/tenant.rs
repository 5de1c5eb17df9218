//! What the daemon benchmarks share: the release binary next to them run as children that die
//! with the driver, a generated company served by `orgsync simulator`, a store filled by
//! `orgsync sync`, and `orgsync run` serving it. Included by path (`#[path]`) by each benchmark,
//! which uses the part it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The release binary as a child that is sent SIGTERM when this process dies, also when it is
/// killed (Ctrl-C) and `Reaped` never runs.
pub fn orgsync_command() -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe.parent().unwrap().parent().unwrap().join("orgsync"));
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    command
}

/// `orgsync ARGS --config CONFIG`, which must succeed; its stdout.
pub fn run(config: &std::path::Path, args: &[&str]) -> String {
    let output = orgsync_command()
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "orgsync {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `orgsync sync --config CONFIG`, which must succeed.
pub fn sync(config: &std::path::Path) {
    run(config, &["sync"]);
}

/// Kills a child when the benchmark ends, however it ends.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A simulated company and a store synced from it, in a temporary directory.
pub struct Tenant {
    pub dir: tempfile::TempDir,
    pub simulator: Reaped,
    /// The simulator's address, `http://127.0.0.1:PORT`.
    pub api_base: String,
    pub config: PathBuf,
    pub socket: PathBuf,
}

impl Tenant {
    /// Serves a generated company of `members`, writes a config (with `extra` appended) and the
    /// files it names (`(name, content)`), and syncs it once.
    pub fn synced(members: usize, extra: &str, files: &[(&str, &str)]) -> Tenant {
        Tenant::synced_with(members, &[], extra, files)
    }

    /// [`Tenant::synced`] with more `orgsync simulator` arguments.
    pub fn synced_with(
        members: usize,
        simulator_args: &[&str],
        extra: &str,
        files: &[(&str, &str)],
    ) -> Tenant {
        let dir = tempfile::tempdir().unwrap();
        let mut simulator = Reaped(
            orgsync_command()
                .args(["simulator", "--listen", "127.0.0.1:0", "--members"])
                .arg(members.to_string())
                .args(simulator_args)
                .stdout(Stdio::piped())
                .spawn()
                .expect("the release binary: run `cargo build --release --bin orgsync` first"),
        );
        let mut banner = String::new();
        BufReader::new(simulator.0.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        // "simulated WeCom on http://127.0.0.1:PORT: corp_id ID with secret SECRET (...)"
        let words: Vec<&str> = banner.split_whitespace().collect();
        let api_base = words[3].trim_end_matches(':').to_owned();
        let (corp_id, secret) = (words[5], words[8]);
        std::fs::write(dir.path().join("secret"), secret).unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let config = dir.path().join("orgsync.toml");
        std::fs::write(
            &config,
            format!(
                "[wecom]\ncorp_id = \"{corp_id}\"\ncorp_secret_file = \"secret\"\napi_base = \"{api_base}\"\n\
                 [store]\npath = \"orgsync.db\"\n[socket]\npath = \"orgsync.sock\"\n{extra}"
            ),
        )
        .unwrap();
        sync(&config);
        Tenant {
            socket: dir.path().join("orgsync.sock"),
            dir,
            simulator,
            api_base,
            config,
        }
    }

    /// `orgsync run` on the store, its log in `daemon.log`; returns once its socket answers.
    pub fn serve(&self) -> Reaped {
        let daemon = Reaped(
            orgsync_command()
                .args(["run", "--config"])
                .arg(&self.config)
                .stderr(std::fs::File::create(self.path("daemon.log")).unwrap())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while UnixStream::connect(&self.socket).is_err() {
            assert!(Instant::now() < deadline, "the daemon did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A process's user plus system CPU time so far, in seconds, from /proc.
pub fn cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    ticks as f64 / per_second.max(1) as f64
}
