//! What a process costs, read from `/proc`: CPU time (`stat` utime + stime, all threads) and
//! resident memory (`status` VmRSS).

/// Linux reports `utime`/`stime` in USER_HZ, which is 100 on every architecture Linux ships
/// for (the kernel fixes it for the ABI, whatever CONFIG_HZ is).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds (user + system) a process has used so far; `None` once it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; the fields start after the last ')'.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    // After the name, field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    #[allow(clippy::cast_precision_loss)]
    Some((utime + stime) as f64 / TICKS_PER_SEC)
}

/// Resident memory in MB (10^6 bytes, the unit the floors use); `None` once the process is gone.
pub fn rss_mb(pid: u32) -> Option<f64> {
    rss_from(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// Resident memory of this process in MB.
pub fn own_rss_mb() -> Option<f64> {
    rss_from(&std::fs::read_to_string("/proc/self/status").ok()?)
}

fn rss_from(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0 / 1e6)
}

/// A local RabbitMQ broker's process (Erlang's `beam.smp` running `rabbit`), if there is one.
pub fn local_broker() -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        (cmdline.contains("beam.smp") && cmdline.contains("rabbit")).then_some(pid)
    })
}

/// Logical CPUs and total memory in GiB, for the report header.
pub fn machine() -> (usize, f64) {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    (cores, mem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        assert!(rss_mb(pid).unwrap() > 0.0);
    }

    #[test]
    fn rss_is_read_from_the_status_line() {
        assert_eq!(rss_from("Name:\tx\nVmRSS:\t  1000 kB\n"), Some(1.024));
    }
}
