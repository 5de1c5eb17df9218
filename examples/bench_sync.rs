//! The end-to-end benchmark: the real sync pipeline (`Syncer::run`: pull over HTTP, then load,
//! diff, apply and events in one SQLite transaction) against the in-repo WeCom simulator on
//! loopback, at any size and simulated latency.
//!
//! ```sh
//! cargo run --release --example bench_sync -- --members 100000 --departments 5000 --latency-ms 0
//! ```
//!
//! Three kinds of process, so that each number means one thing:
//! - the driver (what you start) runs `--repeat` workers one after the other and prints the
//!   median of each number;
//! - a worker is one fresh orgsync: a store in a temporary directory and a `Syncer`. It runs the
//!   first full sync, a resync with nothing changed, and a resync after `--change` of the
//!   directory changed, and reports them as one JSON line. Its peak RSS is orgsync's alone;
//! - the worker's simulator child generates the directory from the seed, serves it, and changes
//!   it when the worker asks (one line on its stdin). Its CPU time is reported separately: on a
//!   small machine it competes with orgsync for the same cores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a measuring tool, not product code

#[path = "../tests/it/harness/host_users.rs"]
mod host_users;

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use chrono::Utc;
use orgsync::config::Config;
use orgsync::demo::simulated_tenant_config;
use orgsync::events::EventSource;
use orgsync::matching::apply::{put_host_users, PutError};
use orgsync::queue::Trigger;
use orgsync::store::Store;
use orgsync::sync::{Mode, RunReport, RunStats, Syncer};
use orgsync_simulator::{Directory, MutationSummary, Simulator};

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// How often the sampler reads this process's RSS and CPU time to attribute them to phases.
const SAMPLE_EVERY: Duration = Duration::from_millis(2);

#[derive(Parser, Debug, Clone)]
#[command(about = "End-to-end benchmark of orgsync against the in-repo WeCom simulator")]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    members: usize,
    #[arg(long, default_value_t = 5_000)]
    departments: usize,
    /// Simulated latency added to every WeCom call.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// `wecom.concurrency`: user/list calls in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Host-application accounts imported before the first run, so that every run also
    /// re-matches: the first N of `Directory::host_users` (one per member, in every format a
    /// real host list has). 0 measures the sync alone.
    #[arg(long, default_value_t = 0)]
    host_users: usize,
    /// Fraction of the members changed before the third run.
    #[arg(long, default_value_t = 0.01)]
    change: f64,
    /// Workers to run; the driver prints the median of each number.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    #[arg(long, default_value_t = 2024)]
    seed: u64,
    /// Where the workers create their stores (a fresh temporary directory inside it each).
    #[arg(long, default_value = "/tmp")]
    store_dir: PathBuf,
    /// Serve the simulator from the worker's own process: its memory then counts in the peak
    /// RSS, which shows how much of a combined number is the simulator's.
    #[arg(long)]
    in_process_simulator: bool,
    /// Print the medians as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[arg(long, value_enum, default_value_t = Role::Driver, hide = true)]
    role: Role,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Driver,
    Worker,
    Simulator,
}

fn main() -> Result<()> {
    // As the orgsync binary does first: the worker measures the pipeline as orgsync runs it.
    orgsync::memory::limit_arenas();
    let args = Args::parse();
    match args.role {
        Role::Driver => drive(&args),
        Role::Worker => {
            let report = work(&args)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Role::Simulator => runtime()?.block_on(serve_simulator(&args)),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    // The same runtime as `orgsync run` and `orgsync sync`: one worker thread per core.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

// ---------------------------------------------------------------------------------------------
// The driver

fn drive(args: &Args) -> Result<()> {
    let exe = std::env::current_exe()?;
    let mut reports = Vec::with_capacity(args.repeat);
    for round in 1..=args.repeat.max(1) {
        eprintln!("bench_sync: worker {round} of {}", args.repeat.max(1));
        let output = Command::new(&exe)
            .args(forwarded(args, Role::Worker))
            .stderr(Stdio::inherit())
            .output()?;
        if !output.status.success() {
            return Err(format!("worker {round} failed with {}", output.status).into());
        }
        reports.push(serde_json::from_slice::<WorkerReport>(&output.stdout)?);
    }
    let medians = Medians::of(&reports);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&medians.to_json(args))?);
    } else {
        medians.print(args);
    }
    Ok(())
}

/// The command line of a worker or simulator child: the driver's own options and `role`.
fn forwarded(args: &Args, role: Role) -> Vec<String> {
    let mut out = vec![
        format!("--members={}", args.members),
        format!("--departments={}", args.departments),
        format!("--latency-ms={}", args.latency_ms),
        format!("--concurrency={}", args.concurrency),
        format!("--change={}", args.change),
        format!("--host-users={}", args.host_users),
        format!("--seed={}", args.seed),
        format!("--store-dir={}", args.store_dir.display()),
        format!(
            "--role={}",
            match role {
                Role::Driver => "driver",
                Role::Worker => "worker",
                Role::Simulator => "simulator",
            }
        ),
    ];
    if args.in_process_simulator {
        out.push("--in-process-simulator".into());
    }
    out
}

/// One worker's three runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WorkerReport {
    runs: Vec<Measured>,
    /// Peak RSS of the worker over its whole life, in MiB.
    process_peak_rss_mib: f64,
    /// RSS a moment after the last run: what a daemon holds between runs.
    idle_rss_mib: f64,
}

/// One `Syncer::run`, measured from the outside.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Measured {
    scenario: String,
    wall_ms: f64,
    /// The phases as `RunStats` reports them.
    stats: Phases,
    /// What `RunStats` does not cover: the run log before the pull, opening the store.
    other_ms: f64,
    /// Calls as the simulator counted them during this run, per endpoint.
    simulator_calls: BTreeMap<String, u64>,
    /// CPU time (user + system) of the orgsync process during the run.
    cpu_ms: f64,
    /// CPU time of the simulator during the run (0 when it runs in-process: it is in `cpu_ms`).
    simulator_cpu_ms: f64,
    /// VmHWM of the run: the peak RSS, reset (`/proc/self/clear_refs`) just before it.
    peak_rss_mib: f64,
    /// The highest sampled RSS within each phase: pull, diff (load and diff), apply with matching,
    /// events and commit.
    phase_rss_mib: [f64; 3],
    /// The CPU time of this process within each phase.
    phase_cpu_ms: [f64; 3],
    /// The RSS when the run started: what the runs before it left.
    start_rss_mib: f64,
    changes: Value,
    /// Links the run's re-matching created and removed.
    links: [usize; 2],
}

// ---------------------------------------------------------------------------------------------
// The worker

fn work(args: &Args) -> Result<WorkerReport> {
    let runtime = runtime()?;
    let mut simulator = if args.in_process_simulator {
        SimulatorHandle::in_process(&runtime, args)?
    } else {
        SimulatorHandle::spawn(args)?
    };
    let workdir = tempfile::Builder::new()
        .prefix("orgsync-bench-")
        .tempdir_in(&args.store_dir)?;
    let config = bench_config(&simulator.info, args.concurrency, workdir.path())?;
    if args.host_users > 0 {
        import_host_users(args, &config.store.path)?;
    }
    let syncer = Syncer::from_config(&config)?;

    let mut runs = Vec::with_capacity(3);
    eprintln!("bench_sync: first full sync");
    runs.push(measure(&runtime, &syncer, &mut simulator, "first")?);
    eprintln!("bench_sync: resync, nothing changed");
    runs.push(measure(&runtime, &syncer, &mut simulator, "no_change")?);
    let changed = simulator.mutate(args.seed.wrapping_add(1), args.change)?;
    eprintln!("bench_sync: resync after changing the directory: {changed}");
    // One decimal of a percent, so that 0.01 reads "changed_1pct" and 0.005 "changed_0.5pct".
    let scenario = format!("changed_{}pct", (args.change * 1000.0).round() / 10.0);
    runs.push(measure(&runtime, &syncer, &mut simulator, &scenario)?);

    let process_peak_rss_mib = status_kib("VmHWM")? as f64 / 1024.0;
    // Long enough for what a run leaves to do in the background (returning freed memory).
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss_mib = status_kib("VmRSS")? as f64 / 1024.0;
    Ok(WorkerReport {
        runs,
        process_peak_rss_mib,
        idle_rss_mib,
    })
}

/// Imports the host accounts as `orgsync host-users import` would, then hands the memory the
/// generated directory took back to the system, so that the first run starts from a small RSS.
fn import_host_users(args: &Args, store: &Path) -> Result<()> {
    let mut users = host_users::host_users(&generate(args));
    users.truncate(args.host_users);
    let source = EventSource::new("wwbench");
    let mut store = Store::open(store)?;
    store.try_write(|tx| -> Result<_, PutError> {
        put_host_users(tx, &source, "bench", &users, true, Utc::now())
    })?;
    drop(users);
    orgsync::memory::release_freed();
    Ok(())
}

/// The demo's config against the simulator child, with the bench's concurrency.
fn bench_config(info: &SimulatorInfo, concurrency: usize, dir: &Path) -> Result<Config> {
    // Set after loading, so checked here as loading would check `wecom.concurrency`.
    if !(1..=32).contains(&concurrency) {
        return Err(format!("--concurrency {concurrency} is not within 1..=32").into());
    }
    let mut config =
        simulated_tenant_config(dir, &info.corp_id, &info.corp_secret, &info.api_base)?;
    config.wecom.concurrency = concurrency;
    Ok(config)
}

fn measure(
    runtime: &tokio::runtime::Runtime,
    syncer: &Syncer,
    simulator: &mut SimulatorHandle,
    scenario: &str,
) -> Result<Measured> {
    // A daemon's runs are hours apart: let the previous run finish returning its freed memory
    // (in the background) before this one starts, or its peak would include that memory.
    std::thread::sleep(Duration::from_secs(1));
    let calls_before = simulator.calls()?;
    let simulator_cpu_before = simulator.cpu_ms()?;
    let start_rss_mib = status_kib("VmRSS")? as f64 / 1024.0;
    // Resets VmHWM to the current RSS, so the peak read after the run is this run's.
    std::fs::write("/proc/self/clear_refs", "5")?;
    let cpu_before = process_cpu_us();
    let sampler = Sampler::start();
    let started = Instant::now();
    // Force: a large `--change` should be measured, not held by the deletion guard.
    let report = runtime.block_on(syncer.run(Trigger::Cli, Mode::Force, std::future::pending()))?;
    let wall = started.elapsed();
    let samples = sampler.stop();
    let cpu_ms = (process_cpu_us() - cpu_before) as f64 / 1000.0;
    let peak_rss_mib = status_kib("VmHWM")? as f64 / 1024.0;
    let simulator_cpu_ms = simulator.cpu_ms()? - simulator_cpu_before;
    let calls_after = simulator.calls()?;

    let (counts, stats) = match report {
        RunReport::Completed { counts, stats, .. } => (counts, stats),
        other => return Err(format!("the {scenario} run did not complete: {other:?}").into()),
    };
    let wall_ms = wall.as_secs_f64() * 1000.0;
    let (phase_rss_mib, phase_cpu_ms) = per_phase(&samples, &stats);
    let simulator_calls = calls_after
        .iter()
        .map(|(endpoint, after)| {
            let before = calls_before.get(endpoint).copied().unwrap_or(0);
            (endpoint.clone(), after - before)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    Ok(Measured {
        scenario: scenario.to_owned(),
        wall_ms,
        other_ms: wall_ms - phases_ms(&stats) as f64,
        simulator_calls,
        cpu_ms,
        simulator_cpu_ms,
        peak_rss_mib,
        phase_rss_mib,
        phase_cpu_ms,
        start_rss_mib,
        changes: serde_json::to_value(counts.changes)?,
        links: [counts.links_created, counts.links_removed],
        stats: Phases::from(&stats),
    })
}

/// `RunStats`, as the worker hands it to the driver.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Phases {
    pull_ms: u64,
    load_ms: u64,
    diff_ms: u64,
    apply_ms: u64,
    match_ms: u64,
    events_ms: u64,
    commit_ms: u64,
    /// Calls as orgsync's client counted them, gettoken included.
    api_calls: u64,
}

impl From<&RunStats> for Phases {
    fn from(stats: &RunStats) -> Phases {
        Phases {
            pull_ms: stats.pull_ms,
            load_ms: stats.load_ms,
            diff_ms: stats.diff_ms,
            apply_ms: stats.apply_ms,
            match_ms: stats.match_ms,
            events_ms: stats.events_ms,
            commit_ms: stats.commit_ms,
            api_calls: stats.api_calls,
        }
    }
}

fn phases_ms(stats: &RunStats) -> u64 {
    stats.pull_ms
        + stats.load_ms
        + stats.diff_ms
        + stats.apply_ms
        + stats.match_ms
        + stats.events_ms
        + stats.commit_ms
}

/// The three phases of the issue: the pull, the diff (load and diff), and apply with events
/// and commit. `RunStats` gives their durations; they run back to back after a few
/// milliseconds of run-log bookkeeping, so the boundaries are placed from the start.
fn phase_windows(stats: &RunStats) -> [Duration; 3] {
    let pull = Duration::from_millis(stats.pull_ms);
    let diff = pull + Duration::from_millis(stats.load_ms + stats.diff_ms);
    [pull, diff, Duration::MAX]
}

/// The highest sampled RSS (MiB) and the CPU time (ms) of each phase.
fn per_phase(samples: &[Sample], stats: &RunStats) -> ([f64; 3], [f64; 3]) {
    let ends = phase_windows(stats);
    let mut peaks = [0u64; 3];
    let mut cpu_at_end = [0u64; 3];
    for sample in samples {
        let phase = ends.iter().position(|&end| sample.at < end).unwrap_or(2);
        peaks[phase] = peaks[phase].max(sample.rss_kib);
        cpu_at_end[phase] = sample.cpu_us;
    }
    // A phase shorter than the sampling period has no sample: it ends where the one before did.
    for phase in 1..3 {
        cpu_at_end[phase] = cpu_at_end[phase].max(cpu_at_end[phase - 1]);
    }
    let start = samples.first().map_or(0, |s| s.cpu_us);
    let cpu = [
        cpu_at_end[0].saturating_sub(start),
        cpu_at_end[1] - cpu_at_end[0],
        cpu_at_end[2] - cpu_at_end[1],
    ];
    (
        peaks.map(|kib| kib as f64 / 1024.0),
        cpu.map(|us| us as f64 / 1000.0),
    )
}

struct Sample {
    at: Duration,
    rss_kib: u64,
    /// This process's CPU time so far, user and system.
    cpu_us: u64,
}

/// Samples this process's RSS and CPU time on a thread of its own until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Sample>>,
}

impl Sampler {
    fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(rss_kib) = rss_kib() {
                    samples.push(Sample {
                        at: started.elapsed(),
                        rss_kib,
                        cpu_us: process_cpu_us(),
                    });
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
            samples
        });
        Sampler { stop, thread }
    }

    fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// User plus system CPU time of this process, to the microsecond.
fn process_cpu_us() -> u64 {
    // SAFETY: getrusage fills the struct it is given; an all-zero rusage is a valid value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Resident set from `/proc/self/statm` (pages), cheaper to read than `status`.
fn rss_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_kib())
}

fn page_kib() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(bytes).unwrap_or(4096) / 1024
}

/// A `kB` line of `/proc/self/status`, e.g. VmHWM (peak RSS) or VmRSS.
fn status_kib(field: &str) -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status").into())
}

/// User plus system CPU time of a child process, from its `/proc/PID/stat`.
fn child_cpu_ms(pid: u32) -> Result<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; the fields after it are plain numbers.
    let after_name = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("malformed stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .ok_or("malformed stat")?
        .iter()
        .map(|f| f.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(ticks as f64 * 1000.0 / per_second as f64)
}

// ---------------------------------------------------------------------------------------------
// The simulator, in a child process or (with --in-process-simulator) in the worker

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SimulatorInfo {
    api_base: String,
    corp_id: String,
    corp_secret: String,
}

struct SimulatorHandle {
    info: SimulatorInfo,
    place: Place,
}

enum Place {
    Child {
        child: Child,
        stdin: ChildStdin,
        stdout: BufReader<ChildStdout>,
    },
    InProcess(Simulator),
}

impl SimulatorHandle {
    fn spawn(args: &Args) -> Result<SimulatorHandle> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(forwarded(args, Role::Simulator))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no stdin to the simulator")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no simulator stdout")?);
        let info = serde_json::from_str(&read_line(&mut stdout)?)?;
        Ok(SimulatorHandle {
            info,
            place: Place::Child {
                child,
                stdin,
                stdout,
            },
        })
    }

    fn in_process(runtime: &tokio::runtime::Runtime, args: &Args) -> Result<SimulatorHandle> {
        let simulator = runtime.block_on(Simulator::start(generate(args)))?;
        Ok(SimulatorHandle {
            info: SimulatorInfo::of(&simulator),
            place: Place::InProcess(simulator),
        })
    }

    /// Calls received so far, per endpoint path.
    fn calls(&mut self) -> Result<BTreeMap<String, u64>> {
        let value = match &mut self.place {
            Place::Child { stdin, stdout, .. } => {
                writeln!(stdin, "calls")?;
                serde_json::from_str(&read_line(stdout)?)?
            }
            Place::InProcess(simulator) => serde_json::to_value(simulator.calls())?,
        };
        Ok(serde_json::from_value(value)?)
    }

    /// Changes `fraction` of the directory; returns what changed, as text.
    fn mutate(&mut self, seed: u64, fraction: f64) -> Result<String> {
        match &mut self.place {
            Place::Child { stdin, stdout, .. } => {
                writeln!(stdin, "mutate {seed} {fraction}")?;
                read_line(stdout)
            }
            Place::InProcess(simulator) => {
                Ok(describe(&simulator.edit(|d| d.mutate(seed, fraction))))
            }
        }
    }

    fn cpu_ms(&self) -> Result<f64> {
        match &self.place {
            Place::Child { child, .. } => child_cpu_ms(child.id()),
            Place::InProcess(_) => Ok(0.0),
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        if let Place::Child { child, .. } = &mut self.place {
            // Reap the child so that no simulator outlives its worker; failing to kill one
            // that already exited is fine.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl SimulatorInfo {
    fn of(simulator: &Simulator) -> SimulatorInfo {
        let directory = simulator.directory();
        SimulatorInfo {
            api_base: simulator.api_base(),
            corp_id: directory.corp_id,
            corp_secret: directory.corp_secret,
        }
    }
}

fn read_line(reader: &mut impl BufRead) -> Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err("the simulator child exited".into());
    }
    Ok(line.trim_end().to_owned())
}

fn generate(args: &Args) -> Directory {
    let mut directory = Directory::generate(args.seed, args.departments, args.members);
    directory.latency_ms = args.latency_ms;
    directory
}

fn describe(summary: &MutationSummary) -> String {
    format!(
        "{} members updated, {} moved, {} left, {} joined; {} departments renamed, {} created, {} deleted",
        summary.updated,
        summary.moved,
        summary.left,
        summary.joined,
        summary.departments_renamed,
        summary.departments_created,
        summary.departments_deleted
    )
}

/// The simulator child: serves the generated directory until its stdin closes, answering one
/// line per command line (`calls`, `mutate SEED FRACTION`).
async fn serve_simulator(args: &Args) -> Result<()> {
    let simulator = Simulator::start(generate(args)).await?;
    println!("{}", serde_json::to_string(&SimulatorInfo::of(&simulator))?);
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["calls"] => println!("{}", serde_json::to_string(&simulator.calls())?),
            ["mutate", seed, fraction] => {
                let (seed, fraction) = (seed.parse()?, fraction.parse()?);
                println!(
                    "{}",
                    describe(&simulator.edit(|d| d.mutate(seed, fraction)))
                );
            }
            _ => return Err(format!("unknown simulator command {line:?}").into()),
        }
    }
    simulator.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Medians and the table

struct Medians {
    runs: Vec<Measured>,
    process_peak_rss_mib: f64,
    idle_rss_mib: f64,
    repeat: usize,
}

impl Medians {
    fn of(reports: &[WorkerReport]) -> Medians {
        let scenarios = reports.first().map_or(0, |r| r.runs.len());
        let runs = (0..scenarios)
            .map(|i| {
                let all: Vec<&Measured> = reports.iter().filter_map(|r| r.runs.get(i)).collect();
                median_run(&all)
            })
            .collect();
        Medians {
            runs,
            process_peak_rss_mib: median(reports.iter().map(|r| r.process_peak_rss_mib)),
            idle_rss_mib: median(reports.iter().map(|r| r.idle_rss_mib)),
            repeat: reports.len(),
        }
    }

    fn to_json(&self, args: &Args) -> Value {
        json!({
            "members": args.members,
            "departments": args.departments,
            "host_users": args.host_users,
            "latency_ms": args.latency_ms,
            "concurrency": args.concurrency,
            "repeat": self.repeat,
            "process_peak_rss_mib": self.process_peak_rss_mib,
            "idle_rss_mib": self.idle_rss_mib,
            "runs": self.runs,
        })
    }

    fn print(&self, args: &Args) {
        println!(
            "orgsync bench_sync: {} members, {} departments, {} host users, latency {} ms, concurrency {}; median of {} worker(s){}",
            args.members,
            args.departments,
            args.host_users,
            args.latency_ms,
            args.concurrency,
            self.repeat,
            if args.in_process_simulator { ", simulator in-process" } else { "" }
        );
        let s = |ms: u64| ms as f64 / 1000.0;
        println!("wall time, s:");
        println!(
            "  {:<14} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
            "run",
            "total",
            "pull",
            "load",
            "diff",
            "apply",
            "match",
            "events",
            "commit",
            "other",
            "calls"
        );
        for run in &self.runs {
            println!(
                "  {:<14} {:>7.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6}",
                run.scenario,
                run.wall_ms / 1000.0,
                s(run.stats.pull_ms),
                s(run.stats.load_ms),
                s(run.stats.diff_ms),
                s(run.stats.apply_ms),
                s(run.stats.match_ms),
                s(run.stats.events_ms),
                s(run.stats.commit_ms),
                run.other_ms / 1000.0,
                run.stats.api_calls,
            );
        }
        println!("CPU time, s (pull | load+diff | apply+match+events+commit), and RSS, MiB:");
        println!(
            "  {:<14} {:>7} {:>6} {:>6} {:>6} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6}",
            "run",
            "orgsync",
            "pull",
            "diff",
            "apply",
            "sim",
            "peak",
            "pull",
            "diff",
            "apply",
            "start"
        );
        for run in &self.runs {
            let [pull, diff, apply] = run.phase_cpu_ms.map(|ms| ms / 1000.0);
            let [rss_pull, rss_diff, rss_apply] = run.phase_rss_mib;
            println!(
                "  {:<14} {:>7.2} {:>6.2} {:>6.2} {:>6.2} {:>7.2} {:>6.0} {:>6.0} {:>6.0} {:>6.0} {:>6.0}",
                run.scenario,
                run.cpu_ms / 1000.0,
                pull,
                diff,
                apply,
                run.simulator_cpu_ms / 1000.0,
                run.peak_rss_mib,
                rss_pull,
                rss_diff,
                rss_apply,
                run.start_rss_mib,
            );
        }
        for run in &self.runs {
            let calls: Vec<String> = run
                .simulator_calls
                .iter()
                .map(|(endpoint, n)| format!("{endpoint} {n}"))
                .collect();
            println!(
                "{}: simulator saw {}; changes {}; links +{} -{}",
                run.scenario,
                calls.join(", "),
                run.changes,
                run.links[0],
                run.links[1]
            );
        }
        if args.latency_ms > 0 {
            if let Some(first) = self.runs.first() {
                let bound = first.stats.api_calls as f64 * args.latency_ms as f64
                    / args.concurrency.max(1) as f64;
                println!(
                    "first pull {:.2} s against calls x latency / concurrency = {:.2} s: ratio {:.2}",
                    first.stats.pull_ms as f64 / 1000.0,
                    bound / 1000.0,
                    first.stats.pull_ms as f64 / bound
                );
            }
        }
        println!(
            "worker peak RSS over all runs: {:.0} MiB; RSS 1 s after the last run: {:.0} MiB",
            self.process_peak_rss_mib, self.idle_rss_mib
        );
    }
}

/// The median of every number of a run; the counts are taken from the first worker (they are
/// the same in each: same seed, same directory).
fn median_run(all: &[&Measured]) -> Measured {
    let pick = |f: &dyn Fn(&Measured) -> f64| median(all.iter().map(|m| f(m)));
    let ms = |f: &dyn Fn(&Measured) -> u64| pick(&|m| f(m) as f64) as u64;
    let first = all[0];
    Measured {
        scenario: first.scenario.clone(),
        wall_ms: pick(&|m| m.wall_ms),
        stats: Phases {
            pull_ms: ms(&|m| m.stats.pull_ms),
            load_ms: ms(&|m| m.stats.load_ms),
            diff_ms: ms(&|m| m.stats.diff_ms),
            apply_ms: ms(&|m| m.stats.apply_ms),
            match_ms: ms(&|m| m.stats.match_ms),
            events_ms: ms(&|m| m.stats.events_ms),
            commit_ms: ms(&|m| m.stats.commit_ms),
            api_calls: first.stats.api_calls,
        },
        other_ms: pick(&|m| m.other_ms),
        simulator_calls: first.simulator_calls.clone(),
        cpu_ms: pick(&|m| m.cpu_ms),
        simulator_cpu_ms: pick(&|m| m.simulator_cpu_ms),
        peak_rss_mib: pick(&|m| m.peak_rss_mib),
        phase_rss_mib: [0, 1, 2].map(|i| pick(&|m| m.phase_rss_mib[i])),
        phase_cpu_ms: [0, 1, 2].map(|i| pick(&|m| m.phase_cpu_ms[i])),
        start_rss_mib: pick(&|m| m.start_rss_mib),
        changes: first.changes.clone(),
        links: first.links,
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bench at a tiny size, with the simulator in-process (the child role needs the
    /// example's own binary): every run completes, a full sync costs one call per department
    /// and none per member, and the imported host users are linked by the first run only.
    #[test]
    fn a_tiny_directory_runs_end_to_end() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let args = Args::parse_from([
            "bench_sync",
            "--members=60",
            "--departments=8",
            "--change=0.1",
            "--host-users=60",
            "--in-process-simulator",
            &format!("--store-dir={}", dir.path().display()),
        ]);
        let report = work(&args).expect("the bench runs");
        let scenarios: Vec<&str> = report.runs.iter().map(|r| r.scenario.as_str()).collect();
        assert_eq!(scenarios, ["first", "no_change", "changed_10pct"]);
        let first = &report.runs[0];
        assert_eq!(first.simulator_calls["/cgi-bin/gettoken"], 1);
        assert_eq!(first.simulator_calls["/cgi-bin/department/list"], 1);
        assert_eq!(first.simulator_calls["/cgi-bin/user/list"], 8);
        assert_eq!(
            first.simulator_calls.values().sum::<u64>(),
            first.stats.api_calls
        );
        assert_eq!(first.changes["members_joined"], 60);
        assert!(first.links[0] > 0, "the imported host users are matched");
        assert_eq!(report.runs[1].changes["members_updated"], 0);
        assert_eq!(report.runs[1].links, [0, 0]);
        assert!(report.runs[2].changes["members_updated"].as_u64() > Some(0));
        assert!(first.peak_rss_mib > 0.0);
    }
}
