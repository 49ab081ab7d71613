//! Observation across ranks: every rank's trace merged on one rank into one Chrome trace
//! (a process per rank, on one time axis; the tasks that send and receive values are
//! tasks of their own) and a summary of what each rank ran and moved.

use std::time::{SystemTime, UNIX_EPOCH};

use dagger_core::observe::Recorder;
use dagger_core::Error;
use serde::{Deserialize, Serialize};

use crate::cluster::{Cluster, Traffic};
use crate::transfer::Serde;

/// What one rank ran and moved, as seen by its recorder and its cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankSummary {
    /// The rank.
    pub rank: usize,
    /// Its host name.
    pub host: String,
    /// Tasks recorded.
    pub tasks: usize,
    /// Their total run time, in nanoseconds.
    pub busy_ns: u64,
    /// Values and bytes sent and received before the merge.
    pub traffic: Traffic,
}

/// One rank's part, as sent to the merging rank.
#[derive(Clone, Serialize, Deserialize)]
struct Part {
    summary: RankSummary,
    chrome_json: String,
    /// When the recorder's time zero was, in nanoseconds since the Unix epoch: the
    /// ranks' traces are put on one axis by it (exact on one host; across hosts as good
    /// as their clocks' agreement).
    origin_unix_ns: u64,
}

/// Every rank's trace on one time axis, and what each rank ran and moved.
#[derive(Clone, Debug)]
pub struct MergedTrace {
    chrome_json: String,
    ranks: Vec<RankSummary>,
}

impl MergedTrace {
    /// The merged trace in Chrome's trace-event format (Perfetto, chrome://tracing): a
    /// process per rank, named with its host.
    pub fn to_chrome_json(&self) -> &str {
        &self.chrome_json
    }

    /// What each rank ran and moved, in rank order.
    pub fn ranks(&self) -> &[RankSummary] {
        &self.ranks
    }
}

/// A table: one line per rank.
impl std::fmt::Display for MergedTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:>4}  {:<16} {:>7} {:>10} {:>7} {:>13} {:>7} {:>13}",
            "rank", "host", "tasks", "busy ms", "sent", "bytes sent", "recvd", "bytes recvd"
        )?;
        for r in &self.ranks {
            writeln!(
                f,
                "{:>4}  {:<16} {:>7} {:>10.1} {:>7} {:>13} {:>7} {:>13}",
                r.rank,
                r.host,
                r.tasks,
                r.busy_ns as f64 / 1e6,
                r.traffic.sent,
                r.traffic.sent_bytes,
                r.traffic.received,
                r.traffic.received_bytes
            )?;
        }
        Ok(())
    }
}

impl Cluster {
    /// Every rank's trace, from the `recorder` each rank attached to its runtime, merged
    /// on `root` (`None` on the other ranks). A distributed operation; call it once the
    /// work to show is done (wait for its handles first).
    ///
    /// ```
    /// use dagger_core::observe::Recorder;
    ///
    /// let cluster = dagger_mpi::init()?;
    /// let recorder = Recorder::new();
    /// let runtime = dagger_core::default_runtime()?;
    /// let merged = {
    ///     let _observing = runtime.observe(recorder.clone());
    ///     let x = cluster.spawn_on(0, || 21u64)?;
    ///     assert_eq!(cluster.spawn_on_with(0, (&x,), |x: &u64| x * 2)?.fetch()?, 42);
    ///     cluster.merge_traces(&recorder, 0)?
    /// };
    /// if let Some(merged) = merged {
    ///     assert_eq!(merged.ranks().len(), cluster.size());
    ///     assert!(merged.to_chrome_json().contains("\"rank 0"));
    ///     println!("{merged}");
    /// }
    /// # Ok::<(), dagger_core::Error>(())
    /// ```
    #[track_caller]
    pub fn merge_traces(
        &self,
        recorder: &Recorder,
        root: usize,
    ) -> Result<Option<MergedTrace>, Error> {
        self.check_rank(root, "merge_traces")?;
        // The values this rank owes are sent (and counted) first.
        self.wait_until_posted();
        let trace = recorder.trace();
        let now_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let part = Part {
            summary: RankSummary {
                rank: self.rank(),
                host: host_name(),
                tasks: trace.tasks().len(),
                busy_ns: trace.tasks().iter().map(|t| t.duration_ns()).sum(),
                traffic: self.traffic(),
            },
            chrome_json: trace.to_chrome_json(),
            origin_unix_ns: now_unix_ns.saturating_sub(recorder.now_ns()),
        };
        let local = dagger_core::spawn(move || Serde(part));
        let Some(parts) = self.gather(root, &local)? else {
            return Ok(None);
        };
        let parts: Vec<Part> = parts.fetch()?.into_iter().map(|part| part.0).collect();
        merge(parts).map(Some)
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Puts every rank's events in a process of its own (pid = rank + 1), shifted onto the
/// earliest rank's time zero.
fn merge(parts: Vec<Part>) -> Result<MergedTrace, Error> {
    let zero = parts.iter().map(|p| p.origin_unix_ns).min().unwrap_or(0);
    let mut events = Vec::new();
    let mut ranks = Vec::with_capacity(parts.len());
    for part in parts {
        let rank = part.summary.rank;
        let shift_us = (part.origin_unix_ns - zero) as f64 / 1e3;
        let trace: serde_json::Value = serde_json::from_str(&part.chrome_json)
            .map_err(|e| Error::InvalidUse(format!("the trace of rank {rank} is not JSON: {e}")))?;
        let Some(serde_json::Value::Array(rank_events)) = trace.get("traceEvents").cloned() else {
            return Err(Error::InvalidUse(format!(
                "the trace of rank {rank} has no event list"
            )));
        };
        for mut event in rank_events {
            let Some(fields) = event.as_object_mut() else {
                continue;
            };
            fields.insert("pid".into(), (rank + 1).into());
            if let Some(ts) = fields.get("ts").and_then(|ts| ts.as_f64()) {
                fields.insert("ts".into(), (ts + shift_us).into());
            }
            if fields.get("name").and_then(|n| n.as_str()) == Some("process_name") {
                fields.insert(
                    "args".into(),
                    serde_json::json!({ "name": format!("rank {rank} ({})", part.summary.host) }),
                );
            }
            events.push(event);
        }
        ranks.push(part.summary);
    }
    let merged = serde_json::json!({ "displayTimeUnit": "ns", "traceEvents": events });
    Ok(MergedTrace {
        chrome_json: merged.to_string(),
        ranks,
    })
}
