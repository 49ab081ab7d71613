//! `DAGGER_TRACE`: recording any program without code changes.
//!
//! `DAGGER_TRACE=path.json` (or `.svg`, `.dot`, `.txt`) records every run of every
//! runtime and writes that export when the process exits; `DAGGER_TRACE=dir/` writes all
//! four (`trace.json`, `gantt.svg`, `graph.dot`, `summary.txt`) into the directory. A path
//! that cannot be written is reported once on stderr and tracing stays off: the program's
//! own work never fails because of tracing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::Recorder;
use crate::error::Error;

/// The environment variable that turns recording on.
pub const TRACE_ENV: &str = "DAGGER_TRACE";

struct EnvTrace {
    recorder: Recorder,
    targets: Vec<PathBuf>,
}

static ENV_TRACE: OnceLock<Option<EnvTrace>> = OnceLock::new();

/// Where `value` asks the trace to go, checked for writability.
pub(crate) fn targets(value: &str) -> Result<Vec<PathBuf>, Error> {
    let value = value.trim();
    if value.ends_with('/') || Path::new(value).is_dir() {
        let dir = PathBuf::from(value);
        std::fs::create_dir_all(&dir).map_err(|e| unwritable(&dir, e))?;
        let targets: Vec<PathBuf> = ["trace.json", "gantt.svg", "graph.dot", "summary.txt"]
            .iter()
            .map(|f| dir.join(f))
            .collect();
        for target in &targets {
            probe(target)?;
        }
        return Ok(targets);
    }
    let path = PathBuf::from(value);
    match path.extension().and_then(|e| e.to_str()) {
        Some("json" | "svg" | "dot" | "txt") => {}
        _ => {
            return Err(Error::Trace(format!(
                "{TRACE_ENV}=`{value}` has no known format; end it with `.json`, `.svg`, `.dot` or `.txt`, or with `/` for all four"
            )))
        }
    }
    probe(&path)?;
    Ok(vec![path])
}

fn unwritable(path: &Path, e: std::io::Error) -> Error {
    Error::Trace(format!(
        "{TRACE_ENV}: `{}` is not writable: {e}",
        path.display()
    ))
}

/// Creates (or truncates) the file now, so that a bad path is reported before the work.
fn probe(path: &Path) -> Result<(), Error> {
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map(drop)
        .map_err(|e| unwritable(path, e))
}

/// The recorder that `DAGGER_TRACE` attaches to every runtime, if it is set and usable.
pub(crate) fn env_recorder() -> Option<Recorder> {
    let state = ENV_TRACE.get_or_init(|| {
        let value = std::env::var(TRACE_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())?;
        match targets(&value) {
            Ok(targets) => {
                register_exit_flush();
                Some(EnvTrace {
                    recorder: Recorder::new(),
                    targets,
                })
            }
            Err(e) => {
                eprintln!("dagger: {e}; tracing is off");
                None
            }
        }
    });
    state.as_ref().map(|s| s.recorder.clone())
}

/// Writes the `DAGGER_TRACE` files now (they are also written when the process exits).
/// Does nothing when `DAGGER_TRACE` is not set.
pub fn flush_env_trace() -> Result<(), Error> {
    let Some(Some(state)) = ENV_TRACE.get() else {
        return Ok(());
    };
    let trace = state.recorder.trace();
    for target in &state.targets {
        trace.write(target)?;
    }
    Ok(())
}

extern "C" fn flush_at_exit() {
    if let Err(e) = flush_env_trace() {
        eprintln!("dagger: {e}");
    }
}

fn register_exit_flush() {
    extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
    }
    // SAFETY: `atexit` is the C standard library's, linked by std on every platform Rust
    // supports with `std`; the callback is a plain `extern "C" fn` that does not unwind
    // (errors are printed, not propagated) and only touches statics that outlive `main`.
    let status = unsafe { atexit(flush_at_exit) };
    if status != 0 {
        eprintln!("dagger: could not register the {TRACE_ENV} writer; call dagger::observe::flush_env_trace() before exiting");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_by_extension_and_directory() {
        let dir = std::env::temp_dir().join(format!("dagger-env-{}", std::process::id()));
        let file = dir.join("t.json");
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(targets(file.to_str().unwrap()).unwrap(), vec![file.clone()]);
        let all = targets(&format!("{}/all/", dir.display())).unwrap();
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|p| p.exists()));
        let err = targets(dir.join("t.bin").to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("`.json`"), "{err}");
        let err = targets("/nonexistent-dir-for-dagger/t.json").unwrap_err();
        assert!(err.to_string().contains("is not writable"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
