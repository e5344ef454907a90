//! This process's peak memory, for the reports of large runs.
//!
//! Linux keeps the high-water mark of the resident set as `VmHWM` in
//! `/proc/self/status`; elsewhere there is no number and reports leave it out.

/// The peak resident set of this process so far, in bytes, where the system says.
pub fn peak_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    high_water_mark(&status)
}

/// The `VmHWM:   123 kB` line of a `/proc/<pid>/status` text, in bytes.
fn high_water_mark(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let mut fields = line.split_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next()? {
        "kB" => value.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_high_water_mark_in_bytes() {
        let status =
            "Name:\tcohort-sim\nVmPeak:\t  900 kB\nVmHWM:\t  199320 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(high_water_mark(status), Some(199_320 * 1024));
    }

    #[test]
    fn a_missing_or_strange_line_gives_nothing() {
        assert_eq!(high_water_mark("VmRSS:\t1000 kB\n"), None);
        assert_eq!(high_water_mark("VmHWM:\t12 MB\n"), None);
        assert_eq!(high_water_mark("VmHWM:\tmany kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_a_peak() {
        assert!(peak_resident_bytes().is_some_and(|b| b > 0));
    }
}
