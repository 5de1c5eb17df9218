//! Keeping glibc's allocator from holding memory orgsync no longer uses.
//!
//! A run at 100,000 members allocates a few hundred megabytes for seconds, then idles for
//! hours. glibc keeps freed pages for reuse, and by default gives each thread that allocates
//! concurrently an arena of its own, up to eight per core. The pull decodes on tokio's worker
//! threads and the write transaction runs on a blocking thread, so what the pull freed sat in
//! arenas the transaction never reused: a no-change resync peaked at 283 MiB instead of 226.

/// The most arenas glibc may create. Two keep allocation from contending between the few
/// threads that allocate at once (the pull's decoding, the socket server, the transaction).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 2;

/// Caps glibc's arenas at [`ARENAS`], unless `MALLOC_ARENA_MAX` is set (glibc reads that
/// itself, and ops who set it meant it). Call before any thread is started.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes a tuning parameter of the allocator; it is called before
        // other threads exist, and a refusal (return value 0) leaves glibc's default in place.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}

/// Hands the memory a run has freed back to the system. Without it, after a run of 100,000
/// members the daemon would sit on about 190 MiB it no longer uses until the next run.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
