//! Reading a socket event line cheaply, for the tests and the benchmark that measure how fast
//! the daemon delivers events. Test support, shared by path with `examples/bench_events.rs`.

/// The `seq` of an event line, found without parsing the whole line: a reader that parses
/// every event as JSON measures its JSON parser (in a debug build, above all), not the daemon.
pub fn seq_of(line: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"seq\":";
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = line[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&line[at..at + digits])
        .ok()?
        .parse()
        .ok()
}
