//! Login latency: how long `login.resolve` takes over the socket, from the request line to the
//! reply, for a directory of 100,000 members, one request at a time and several at once.
//!
//! ```sh
//! cargo build --release --bin orgsync --example bench_login
//! target/release/examples/bench_login --members 100000
//! target/release/examples/bench_login --members 100000 --latency-ms 0,30
//! ```
//!
//! It runs the release binary next to it as three processes, as `bench_snapshot` does:
//! `orgsync simulator --members N` serves a generated company, `orgsync sync` fills a store in a
//! temporary directory, and `orgsync run` serves it. The driver then puts host users for some
//! members with unique names (as root, a socket admin), so that their logins resolve to a host
//! account, and for each phase mints every login code first with `POST /_sim/login_code` (not
//! timed). A phase sends `{"op":"login.resolve","code":C}` lines over one connection per worker,
//! each worker's requests one after the other, and times each from writing the line to reading
//! the reply. Every reply is checked: the member the code was minted for, and the host user
//! linked to them or `null`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a measuring tool, not product code

#[path = "support/sim.rs"]
mod sim;
#[path = "support/tenant.rs"]
mod tenant;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use sim::Sim;
use tenant::{cpu, Tenant};

#[derive(Parser)]
#[command(about = "login.resolve over the socket: latency percentiles, sequential and concurrent")]
struct Args {
    /// Members of the generated company.
    #[arg(long, default_value_t = 100_000)]
    members: usize,
    /// Measured resolutions per phase (each phase mints this many codes).
    #[arg(long, default_value_t = 2_000)]
    resolutions: usize,
    /// Workers of each phase, each with its own connection; one phase per value.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    concurrency: Vec<usize>,
    /// The simulator's `latency_ms` (added to every `/cgi-bin` answer); one set of phases per value.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    latency_ms: Vec<u64>,
    /// Members given a host user of the same name (all with unique names), so they are linked.
    #[arg(long, default_value_t = 1_000)]
    host_users: usize,
    /// The fraction of resolutions that are for linked members; the rest are unlinked members.
    #[arg(long, default_value_t = 0.5)]
    linked: f64,
    /// Resolutions before the first phase of each latency, not measured (the access token, the
    /// daemon's and SQLite's caches).
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Seed of the choice of members.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// A member who will open the host application, and what their login must resolve to.
#[derive(Clone)]
struct Person {
    userid: String,
    name: String,
    host_user_id: Option<String>,
}

/// One login: a freshly minted code and who it is for.
struct Login {
    code: String,
    person: Person,
}

fn main() {
    let args = Args::parse();
    assert!(
        args.concurrency.iter().all(|&c| c > 0),
        "--concurrency must be at least 1"
    );
    let tenant = Tenant::synced(args.members, "", &[]);
    let daemon = tenant.serve();
    let (socket, api_base, simulator) = (&tenant.socket, &tenant.api_base, &tenant.simulator);

    let sim = Sim::new(api_base);
    let mut rng = Rng(args.seed.max(1));
    let (linked, unlinked) = people(&sim.directory(), args.host_users, &mut rng);
    put_host_users(socket, &linked);
    println!(
        "{} members; {} linked to a host user by name; {:.0}% of resolutions for linked members",
        args.members,
        linked.len(),
        args.linked * 100.0
    );

    let (daemon_pid, simulator_pid) = (daemon.0.id(), simulator.0.id());
    println!("latency_ms,concurrency,kind,resolutions,p50_ms,p95_ms,p99_ms,max_ms,mean_ms");
    for &latency in &args.latency_ms {
        sim.set_latency(latency);
        let warmup = mint(&sim, args.warmup, args.linked, &linked, &unlinked, &mut rng);
        run_phase(socket, warmup, 1);
        for &concurrency in &args.concurrency {
            let logins = mint(
                &sim,
                args.resolutions,
                args.linked,
                &linked,
                &unlinked,
                &mut rng,
            );
            let (daemon_cpu, simulator_cpu) = (cpu(daemon_pid), cpu(simulator_pid));
            let started = Instant::now();
            let samples = run_phase(socket, logins, concurrency);
            let seconds = started.elapsed().as_secs_f64();
            let daemon_cpu = cpu(daemon_pid) - daemon_cpu;
            let simulator_cpu = cpu(simulator_pid) - simulator_cpu;
            let count = samples.len();
            for (kind, filter) in [
                ("all", None),
                ("linked", Some(true)),
                ("unlinked", Some(false)),
            ] {
                let mut times: Vec<Duration> = samples
                    .iter()
                    .filter(|(is_linked, _)| filter.is_none_or(|f| f == *is_linked))
                    .map(|&(_, time)| time)
                    .collect();
                if let Some(s) = Summary::of(&mut times) {
                    println!(
                        "{latency},{concurrency},{kind},{},{:.3},{:.3},{:.3},{:.3},{:.3}",
                        times.len(),
                        s.p50,
                        s.p95,
                        s.p99,
                        s.max,
                        s.mean
                    );
                }
            }
            println!(
                "# latency {latency} ms, concurrency {concurrency}: {count} resolutions in {seconds:.2} s, \
                 {:.0}/s; CPU per resolution: daemon {:.0} µs, simulator {:.0} µs",
                count as f64 / seconds,
                daemon_cpu * 1e6 / count as f64,
                simulator_cpu * 1e6 / count as f64
            );
        }
    }
}

/// Splits the directory's active members into those who get a host user (`host_users` of them,
/// each with a name no other member has, so that the name alone links them) and the others.
fn people(directory: &Value, host_users: usize, rng: &mut Rng) -> (Vec<Person>, Vec<Person>) {
    let users = directory["users"].as_array().unwrap();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for user in users {
        *names.entry(user["name"].as_str().unwrap()).or_default() += 1;
    }
    // Only active members open applications (not the disabled or the not yet activated).
    let active: Vec<&Value> = users
        .iter()
        .filter(|user| user["status"].as_u64().unwrap_or(1) == 1)
        .collect();
    let mut unique: Vec<&Value> = active
        .iter()
        .copied()
        .filter(|user| names[user["name"].as_str().unwrap()] == 1)
        .collect();
    assert!(
        unique.len() >= host_users,
        "only {} active members have a unique name; ask for fewer --host-users",
        unique.len()
    );
    rng.shuffle(&mut unique);
    let linked: Vec<Person> = unique[..host_users]
        .iter()
        .enumerate()
        .map(|(n, user)| Person {
            userid: user["userid"].as_str().unwrap().to_owned(),
            name: user["name"].as_str().unwrap().to_owned(),
            host_user_id: Some(format!("h-{n}")),
        })
        .collect();
    let chosen: HashSet<&str> = linked.iter().map(|p| p.userid.as_str()).collect();
    let unlinked: Vec<Person> = active
        .iter()
        .filter(|user| !chosen.contains(user["userid"].as_str().unwrap()))
        .map(|user| Person {
            userid: user["userid"].as_str().unwrap().to_owned(),
            name: user["name"].as_str().unwrap().to_owned(),
            host_user_id: None,
        })
        .collect();
    (linked, unlinked)
}

/// `host_users.put` in lines well under the socket's 1 MiB, then checks every one was linked.
fn put_host_users(socket: &Path, linked: &[Person]) {
    let mut connection = Connection::open(socket);
    let mut last = Value::Null;
    for chunk in linked.chunks(2_000) {
        let users: Vec<Value> = chunk
            .iter()
            .map(|p| json!({"id": p.host_user_id, "name": p.name}))
            .collect();
        let line = json!({"op": "host_users.put", "users": users}).to_string();
        last = serde_json::from_str(&connection.request(&line)).unwrap();
        assert_eq!(last["ok"], true, "{last}");
    }
    if !linked.is_empty() {
        assert_eq!(
            last["linked"].as_u64(),
            Some(linked.len() as u64),
            "every host user should be linked by name: {last}"
        );
    }
}

/// Mints `count` login codes, `linked` of them (as a fraction) for linked members, in a random
/// order and for randomly chosen members.
fn mint(
    sim: &Sim,
    count: usize,
    linked: f64,
    linked_people: &[Person],
    unlinked_people: &[Person],
    rng: &mut Rng,
) -> Vec<Login> {
    let chosen: Vec<Person> = (0..count)
        .map(|_| {
            let pool = if linked_people.is_empty()
                || (rng.unit() >= linked && !unlinked_people.is_empty())
            {
                unlinked_people
            } else {
                linked_people
            };
            pool[rng.below(pool.len())].clone()
        })
        .collect();
    sim.login_codes(chosen)
}

/// Resolves every code over `concurrency` connections, each worker taking every
/// `concurrency`-th code in turn; returns (linked?, time) per resolution.
fn run_phase(socket: &Path, logins: Vec<Login>, concurrency: usize) -> Vec<(bool, Duration)> {
    let mut shares: Vec<Vec<Login>> = (0..concurrency).map(|_| Vec::new()).collect();
    for (n, login) in logins.into_iter().enumerate() {
        shares[n % concurrency].push(login);
    }
    let start = Arc::new(Barrier::new(concurrency));
    let workers: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let (socket, start) = (socket.to_owned(), Arc::clone(&start));
            std::thread::spawn(move || {
                let mut connection = Connection::open(&socket);
                start.wait();
                share
                    .into_iter()
                    .map(|login| {
                        let line = json!({"op": "login.resolve", "code": login.code}).to_string();
                        let sent = Instant::now();
                        let reply = connection.request(&line);
                        let time = sent.elapsed();
                        check(&reply, &login.person);
                        (login.person.host_user_id.is_some(), time)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    workers
        .into_iter()
        .flat_map(|worker| worker.join().unwrap())
        .collect()
}

/// The reply names the member the code was minted for and the host user linked to them.
fn check(reply: &str, person: &Person) {
    let reply: Value = serde_json::from_str(reply).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    assert!(
        reply["userid"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(&person.userid),
        "{} for {}",
        reply["userid"],
        person.userid
    );
    assert_eq!(
        reply["host_user_id"].as_str(),
        person.host_user_id.as_deref(),
        "{reply}"
    );
    assert_eq!(reply["fetched"], false, "{reply}");
}

/// One socket connection, requests in sequence.
struct Connection {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Connection {
    fn open(socket: &Path) -> Connection {
        let writer = UnixStream::connect(socket).unwrap();
        let reader = BufReader::with_capacity(1 << 16, writer.try_clone().unwrap());
        Connection { reader, writer }
    }

    /// Sends one request line; the reply line.
    fn request(&mut self, line: &str) -> String {
        let mut request = String::with_capacity(line.len() + 1);
        request.push_str(line);
        request.push('\n');
        self.writer.write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        let read = self.reader.read_line(&mut reply).unwrap();
        assert!(read > 0, "the daemon closed the connection");
        reply
    }
}

impl Sim {
    /// `POST /_sim/login_code` for each person.
    fn login_codes(&self, people: Vec<Person>) -> Vec<Login> {
        let url = format!("{}/_sim/login_code", self.base);
        self.runtime.block_on(async {
            let mut logins = Vec::with_capacity(people.len());
            for person in people {
                let response = self
                    .http
                    .post(&url)
                    .json(&json!({"userid": person.userid}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                let body: Value = response.json().await.unwrap();
                let code = body["code"].as_str().unwrap().to_owned();
                logins.push(Login { code, person });
            }
            logins
        })
    }
}

/// Percentiles (nearest rank) and the mean, in milliseconds.
struct Summary {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Summary {
    fn of(times: &mut [Duration]) -> Option<Summary> {
        if times.is_empty() {
            return None;
        }
        times.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let rank = |p: f64| {
            let index = (p * times.len() as f64).ceil() as usize;
            ms(times[index.clamp(1, times.len()) - 1])
        };
        let total: Duration = times.iter().sum();
        Some(Summary {
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: ms(times[times.len() - 1]),
            mean: ms(total) / times.len() as f64,
        })
    }
}

/// xorshift64*: the choice of members, the same for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}
