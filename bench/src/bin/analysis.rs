//! The analysis benchmark: the `analyze` step's work (skip rules, tree-sitter outlines of
//! every source file, modules, the import graph) on a large real crate from the local cargo
//! registry, beside the raw tree-sitter parse of the same files in the same run, both on
//! every core. Prints MB/s of each and the peak memory of each phase.
//!
//! ```text
//! cargo run -p isocrates-bench --bin analysis [-- PATH] [--rounds N]
//! ```
//!
//! Without `PATH` it takes the newest `tokio-*` crate under `~/.cargo/registry/src`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use isocrates_workflows::analyze::{Language, Parsers, SourceFile, analyze};

#[allow(clippy::print_stdout)]
fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut rounds = 5usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => rounds = args.next().context("--rounds needs a number")?.parse()?,
            other => path = Some(PathBuf::from(other)),
        }
    }
    let root = match path {
        Some(path) => path,
        None => registry_crate("tokio")?,
    };
    let files = read_tree(&root)?;
    let source_bytes: u64 =
        files.iter().filter(|f| Language::of(&f.path).is_some()).map(|f| f.size).sum();
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "{}: {} files, {:.1} MB of source ({:.1} MB in all), {threads} threads, {rounds} rounds",
        root.display(),
        files.len(),
        mb(source_bytes),
        mb(total_bytes)
    );

    // Warm both once, then time the rounds; memory is the peak of each phase alone.
    raw_parse(&files, threads);
    let _ = analyze("bench", files.clone());

    reset_peak();
    let started = Instant::now();
    for _ in 0..rounds {
        raw_parse(&files, threads);
    }
    let raw = started.elapsed().as_secs_f64() / rounds as f64;
    let raw_peak = peak_rss();

    reset_peak();
    let started = Instant::now();
    let mut symbols = 0;
    for _ in 0..rounds {
        let analysis = analyze("bench", files.clone());
        symbols = analysis.files.iter().map(|f| f.symbols.len()).sum::<usize>();
    }
    let analysed = started.elapsed().as_secs_f64() / rounds as f64;
    let analysis_peak = peak_rss();

    println!(
        "raw tree-sitter parse: {:.1} MB/s ({:.0} ms a pass), peak RSS {}",
        mb(source_bytes) / raw,
        raw * 1000.0,
        show_kb(raw_peak)
    );
    println!(
        "analysis:              {:.1} MB/s ({:.0} ms a pass, {symbols} symbols), peak RSS {}",
        mb(source_bytes) / analysed,
        analysed * 1000.0,
        show_kb(analysis_peak)
    );
    println!("analysis / raw parse:  {:.2}", raw / analysed);
    Ok(())
}

/// Parses every source file once, on `threads` threads, and keeps nothing.
fn raw_parse(files: &[SourceFile], threads: usize) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut parsers = Parsers::new();
                while let Some(file) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let (Some(language), Some(content)) =
                        (Language::of(&file.path), &file.content)
                    {
                        assert!(parsers.parse_only(language, content));
                    }
                }
            });
        }
    });
}

/// Every file under `root`, as the clone step would hand them to the analysis.
fn read_tree(root: &Path) -> anyhow::Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                let content = std::fs::read(&path)?;
                let relative = path.strip_prefix(root)?.to_string_lossy().replace('\\', "/");
                files.push(SourceFile {
                    path: relative,
                    size: content.len() as u64,
                    content: Some(content),
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The newest version of the crate `name` in the local cargo registry.
fn registry_crate(name: &str) -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let mut found = Vec::new();
    for index in std::fs::read_dir(home.join("registry/src"))? {
        for entry in std::fs::read_dir(index?.path())? {
            let path = entry?.path();
            let folder = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let version = folder.strip_prefix(name).and_then(|rest| rest.strip_prefix('-'));
            if version.is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit())) {
                found.push(path);
            }
        }
    }
    found.sort();
    found.pop().with_context(|| format!("no {name} crate in the cargo registry: pass a path"))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

/// The process's peak resident memory since the last reset, in kB (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Starts a new peak-memory window (Linux: writing 5 to `clear_refs`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn show_kb(kb: Option<u64>) -> String {
    kb.map(|kb| format!("{:.0} MB", kb as f64 / 1024.0)).unwrap_or_else(|| "unknown".into())
}
