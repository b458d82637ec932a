//! Cost of one scan for a run's leftover processes by its marker: Linux's `/proc` reader against
//! the portable `sysinfo` reader used on macOS and Windows, and one liveness check. Median of
//! N scans over this machine's process table. Run with
//! `cargo bench -p personas-engine --bench reaper`.

use personas_engine::reaper;
use std::time::Instant;

const SCANS: usize = 50;

fn median_micros(mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..SCANS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let ids = ["01a23ae1-0000-7000-8000-000000000000"];
    let processes = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    println!("processes in the table: {processes}");
    #[cfg(target_os = "linux")]
    println!(
        "find_marked via /proc:   {:>9.0} µs",
        median_micros(|| {
            reaper::find_marked_in_proc(&ids);
        })
    );
    println!(
        "find_marked via sysinfo: {:>9.0} µs",
        median_micros(|| {
            reaper::find_marked_with_sysinfo(&ids);
        })
    );
    let me = std::process::id();
    println!(
        "pid_alive:               {:>9.2} µs",
        median_micros(|| {
            assert!(reaper::pid_alive(me));
        })
    );
}
