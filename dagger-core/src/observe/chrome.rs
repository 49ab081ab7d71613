//! Chrome trace-event JSON (opens in Perfetto and chrome://tracing): one track per
//! worker thread and per device stream, a track of runs, task names and arguments.

use std::fmt::Write;

use super::trace::Trace;
use super::Worker;

/// Track ids: workers keep their index; the caller and the runs get their own.
const CALLER_TID: u64 = 9_999;
const RUNS_TID: u64 = 10_000;
const STREAM_TID: u64 = 20_000;

pub(crate) fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn micros(ns: u64) -> String {
    format!("{}.{:03}", ns / 1_000, ns % 1_000)
}

impl Trace {
    /// The trace in Chrome's trace-event format.
    pub fn to_chrome_json(&self) -> String {
        let mut out = String::from("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
        let mut first = true;
        let mut event = |out: &mut String, body: String| {
            if !first {
                out.push_str(",\n");
            }
            first = false;
            out.push_str(&body);
        };
        let metadata = |pid: u64, tid: u64, name: &str| {
            let mut s = format!("{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":");
            json_string(&mut s, name);
            s.push_str("}}");
            s
        };
        event(
            &mut out,
            "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,\"args\":{\"name\":\"dagger\"}}"
                .into(),
        );
        event(&mut out, metadata(1, RUNS_TID, "runs"));
        for worker in self.workers() {
            let tid = match worker {
                Worker::Thread(n) => n as u64,
                Worker::Caller => CALLER_TID,
            };
            event(&mut out, metadata(1, tid, &worker.to_string()));
        }
        let streams = self.streams();
        for (index, (device, stream)) in streams.iter().enumerate() {
            event(
                &mut out,
                metadata(
                    1,
                    STREAM_TID + index as u64,
                    &format!("{device} stream {stream}"),
                ),
            );
        }

        for run in self.runs() {
            let end = run.end_ns.unwrap_or(run.start_ns);
            let mut s = format!("{{\"name\":\"run {}\",\"cat\":\"run\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":1,\"tid\":{RUNS_TID},\"args\":{{\"tasks\":{},\"nested\":{}",
                run.id, micros(run.start_ns), micros(end.saturating_sub(run.start_ns)), run.tasks, run.nested);
            if let Some(error) = &run.error {
                s.push_str(",\"error\":");
                json_string(&mut s, error);
            }
            s.push_str("}}");
            event(&mut out, s);
        }
        for task in self.tasks() {
            let tid = match (&task.device, task.worker) {
                (Some(device), _) => {
                    STREAM_TID + streams.iter().position(|s| s == device).unwrap_or(0) as u64
                }
                (None, Worker::Thread(n)) => n as u64,
                (None, Worker::Caller) => CALLER_TID,
            };
            let mut s = String::from("{\"name\":");
            json_string(&mut s, task.name);
            let _ = write!(
                s,
                ",\"cat\":\"task\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":1,\"tid\":{tid},\"args\":{{\"run\":{},\"node\":{},\"location\":",
                micros(task.start_ns),
                micros(task.duration_ns()),
                task.run,
                task.node
            );
            json_string(&mut s, &task.location.to_string());
            let _ = write!(s, ",\"worker\":");
            json_string(&mut s, &task.worker.to_string());
            if task.bytes_moved > 0 {
                let _ = write!(s, ",\"bytes\":{}", task.bytes_moved);
            }
            if let Some(error) = &task.error {
                s.push_str(",\"error\":");
                json_string(&mut s, error);
            }
            s.push_str("}}");
            event(&mut out, s);
        }
        out.push_str("\n]}\n");
        out
    }
}
