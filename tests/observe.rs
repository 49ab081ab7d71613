//! Observation: what a Recorder captures, and that every export is well-formed (parsed
//! with real JSON, XML and DOT parsers) and contains every task.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{runtime, watchdog, DropFlag};
use dagger::observe::{Observer, Recorder, RunInfo, TaskEnd, TaskStart, Trace, Worker};
use dagger::prelude::*;

#[task]
fn make(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[task(name = "sum-up")]
fn total(v: &[u64]) -> u64 {
    v.iter().sum()
}

#[task]
fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

#[task]
fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[task]
fn fail_if(flag: bool) -> Result<u64, String> {
    if flag {
        Err("asked to fail".into())
    } else {
        Ok(1)
    }
}

/// An 8-node graph recorded on 2 threads.
fn recorded() -> (Trace, &'static dagger::graph::Graph) {
    let rt = runtime(2);
    let recorder = Recorder::new();
    let _guard = rt.observe(recorder.clone());
    let g = dag! {
        let a = make(100);
        let b = make(200);
        let sa = total(&a);
        let sb = total(&b);
        // Far apart, so that a loaded machine does not swap which nap is longer.
        let x = nap(30);
        let y = nap(1);
        let s = add(sa, sb);
        let t = add(x, y);
        (s, t)
    };
    let graph = g.graph();
    assert_eq!(g.run_on(&rt).unwrap(), (4950 + 19900, 31));
    (recorder.trace(), graph)
}

#[test]
fn records_every_task_once_with_worker_and_times() {
    watchdog(30, || {
        let (trace, graph) = recorded();
        assert_eq!(trace.runs().len(), 1);
        let run = &trace.runs()[0];
        assert_eq!(run.tasks, 8);
        assert!(run.error.is_none() && !run.nested);
        let end = run.end_ns.expect("the run finished");
        assert_eq!(trace.tasks().len(), 8);
        let nodes: HashSet<usize> = trace.tasks().iter().map(|t| t.node).collect();
        assert_eq!(nodes, (0..8).collect());
        for task in trace.tasks() {
            assert_eq!(task.name, graph.nodes()[task.node].name());
            assert!(
                matches!(task.worker, Worker::Thread(0 | 1)),
                "{:?}",
                task.worker
            );
            assert!(
                run.start_ns <= task.start_ns && task.start_ns <= task.end_ns && task.end_ns <= end
            );
        }
        let nap = trace.tasks().iter().find(|t| t.node == 4).unwrap();
        assert!(
            nap.duration_ns() >= 30_000_000,
            "nap(30) took {} ns",
            nap.duration_ns()
        );
    });
}

#[test]
fn chrome_trace_is_valid_json_with_a_track_per_worker() {
    let (trace, _) = recorded();
    let json: serde_json::Value =
        serde_json::from_str(&trace.to_chrome_json()).expect("valid JSON");
    let events = json["traceEvents"].as_array().expect("traceEvents array");
    let tasks: Vec<&serde_json::Value> = events.iter().filter(|e| e["cat"] == "task").collect();
    assert_eq!(tasks.len(), 8);
    let mut names = HashSet::new();
    let mut tids = HashSet::new();
    for e in &tasks {
        assert_eq!(e["ph"], "X");
        assert!(e["ts"].as_f64().unwrap() >= 0.0);
        assert!(e["dur"].as_f64().unwrap() >= 0.0);
        assert_eq!(e["pid"], 1);
        assert!(e["args"]["node"].as_u64().unwrap() < 8);
        assert!(e["args"]["location"]
            .as_str()
            .unwrap()
            .contains("observe.rs:"));
        names.insert(e["name"].as_str().unwrap().to_owned());
        tids.insert(e["tid"].as_u64().unwrap());
    }
    assert_eq!(
        names,
        ["make", "sum-up", "nap", "add"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    // Every task track is named.
    for tid in tids {
        let named = events
            .iter()
            .any(|e| e["ph"] == "M" && e["name"] == "thread_name" && e["tid"] == tid);
        assert!(named, "track {tid} has no thread_name");
    }
    let runs: Vec<_> = events.iter().filter(|e| e["cat"] == "run").collect();
    assert_eq!(runs.len(), 1);
}

#[test]
fn gantt_is_well_formed_svg_naming_every_task() {
    let (trace, _) = recorded();
    let svg = trace.to_svg_gantt().unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let text: String = doc
        .descendants()
        .filter(|n| n.is_text())
        .map(|n| n.text().unwrap())
        .collect::<Vec<_>>()
        .join("|");
    for name in [
        "make",
        "sum-up",
        "nap",
        "add",
        "worker 0",
        "time (ms)",
        "dag! at tests",
    ] {
        assert!(
            text.contains(name),
            "{name} missing from the chart text: {text}"
        );
    }
    // Exactly one row per worker: the y axis labels name each worker once and nothing else.
    let rows: Vec<&str> = doc
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .map(str::trim)
        .filter(|t| t.starts_with("worker ") || t.starts_with("caller"))
        .collect();
    let mut workers: Vec<String> = trace.workers().iter().map(|w| w.to_string()).collect();
    workers.sort();
    let mut labelled: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    labelled.sort();
    assert_eq!(labelled, workers, "one row per worker");
    // The legend is below the rows, not in empty rows above them.
    let y_of = |pick: &dyn Fn(&str) -> bool| -> Vec<f64> {
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter(|n| n.text().is_some_and(|t| pick(t.trim())))
            .filter_map(|n| n.attribute("y")?.parse::<f64>().ok())
            .collect()
    };
    let rows_y = y_of(&|t| t.starts_with("worker "));
    let legend_y = y_of(&|t| t.starts_with("make ("));
    assert!(
        !rows_y.is_empty() && !legend_y.is_empty(),
        "{rows_y:?} {legend_y:?}"
    );
    let lowest_row = rows_y.iter().cloned().fold(f64::MIN, f64::max);
    assert!(
        legend_y.iter().all(|&y| y > lowest_row),
        "legend at {legend_y:?}, rows at {rows_y:?}"
    );
    let rects = doc.descendants().filter(|n| n.has_tag_name("rect")).count();
    assert!(rects >= 8, "one bar per task, got {rects} rects");
}

/// How many task events a Chrome trace has (parsed as JSON).
fn task_events(chrome_json: &str) -> usize {
    let json: serde_json::Value = serde_json::from_str(chrome_json).expect("valid JSON");
    json["traceEvents"]
        .as_array()
        .expect("traceEvents")
        .iter()
        .filter(|e| e["cat"] == "task")
        .count()
}

fn parse_dot(text: &str) -> dot_parser::canonical::Graph<(String, String)> {
    let ast = dot_parser::ast::Graph::try_from(text)
        .unwrap_or_else(|e| panic!("invalid DOT: {e}\n{text}"));
    let owned: dot_parser::ast::Graph<(String, String)> = ast.filter_map(&|(k, v): (
        dot_parser::ast::ID<'_>,
        dot_parser::ast::ID<'_>,
    )| {
        Some((k.into(), v.into()))
    });
    dot_parser::canonical::Graph::from(owned)
}

#[test]
fn executed_dot_is_valid_with_every_node_and_the_critical_path() {
    let (trace, graph) = recorded();
    let run = trace.runs()[0].id;
    let dot = trace.to_dot();
    let parsed = parse_dot(&dot);
    for node in 0..8 {
        assert!(
            parsed.nodes.set.contains_key(&format!("r{run}n{node}")),
            "node {node} missing:\n{dot}"
        );
    }
    assert_eq!(parsed.edges.set.len(), graph.edges().len());
    // The naps (30 ms + add) are the heaviest chain.
    let (path, total) = trace.critical_path(run);
    assert_eq!(path, [4, 7], "nap(30) -> add");
    assert!(total >= 30_000_000);
    assert!(
        dot.contains(&format!(
            "r{run}n4 -> r{run}n7 [label=\"x\", color=\"#c62828\", penwidth=2.5]"
        )),
        "{dot}"
    );
}

#[test]
fn static_dot_is_valid() {
    let (_, graph) = recorded();
    let parsed = parse_dot(&graph.to_dot());
    assert_eq!(parsed.nodes.set.len(), 8);
    assert_eq!(parsed.edges.set.len(), graph.edges().len());
}

#[test]
fn summary_totals_by_name() {
    let (trace, _) = recorded();
    let summary = trace.summary();
    assert_eq!(summary.tasks, 8);
    let nap = summary.by_name.iter().find(|s| s.name == "nap").unwrap();
    assert_eq!(nap.count, 2);
    assert!(nap.total_ns >= 31_000_000 && nap.max_ns >= 30_000_000);
    assert_eq!(summary.by_name[0].name, "nap", "sorted by total time");
    assert_eq!(summary.critical_path.0, ["nap", "add"]);
    assert!(summary.parallelism > 0.0);
    assert!(summary
        .workers
        .iter()
        .all(|(_, busy, idle)| busy + idle >= summary.wall_ns.min(*busy)));
    let text = summary.to_string();
    for expected in [
        "task",
        "count",
        "nap",
        "sum-up",
        "critical path",
        "worker 0",
        "idle",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
}

#[test]
fn write_chooses_the_format_by_extension() {
    let (trace, _) = recorded();
    let dir = std::env::temp_dir().join(format!("dagger-observe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["t.json", "t.svg", "t.dot", "t.txt"] {
        trace.write(dir.join(file)).unwrap();
        assert!(
            std::fs::metadata(dir.join(file)).unwrap().len() > 100,
            "{file}"
        );
    }
    let err = trace.write(dir.join("t.png")).unwrap_err();
    assert!(err.to_string().contains("`.json`"), "{err}");
    let err = trace.write("/nonexistent-dagger-dir/t.json").unwrap_err();
    assert!(err.to_string().contains("cannot write"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[derive(Default)]
struct Counting {
    started: AtomicUsize,
    finished: AtomicUsize,
    failed: AtomicUsize,
    runs: Mutex<Vec<(u64, bool)>>,
}

impl Observer for Counting {
    fn task_started(&self, _: &TaskStart) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }
    fn task_finished(&self, task: &TaskEnd<'_>) {
        self.finished.fetch_add(1, Ordering::SeqCst);
        if task.error.is_some() {
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn run_finished(&self, run: &RunInfo, error: Option<&dagger::Error>) {
        self.runs.lock().unwrap().push((run.id, error.is_some()));
    }
}

#[test]
fn observers_see_failures_and_stop_when_detached() {
    watchdog(30, || {
        let rt = runtime(2);
        let counting = Arc::new(Counting::default());
        let guard = rt.observe(SharedObserver(counting.clone()));
        let err = dag! { let a = fail_if(true)?; let b = add(a, 1); b }
            .run_on(&rt)
            .unwrap_err();
        assert_eq!(err.task(), Some("fail_if"));
        assert_eq!(counting.failed.load(Ordering::SeqCst), 1);
        assert_eq!(
            counting.finished.load(Ordering::SeqCst),
            1,
            "the dependent never ran"
        );
        assert_eq!(counting.started.load(Ordering::SeqCst), 1);
        assert_eq!(counting.runs.lock().unwrap().len(), 1);
        assert!(
            counting.runs.lock().unwrap()[0].1,
            "the run is reported as failed"
        );
        drop(guard);
        dag! { let a = fail_if(false)?; a }.run_on(&rt).unwrap();
        assert_eq!(
            counting.finished.load(Ordering::SeqCst),
            1,
            "no events after detaching"
        );
    });
}

struct SharedObserver(Arc<Counting>);

impl Observer for SharedObserver {
    fn task_started(&self, t: &TaskStart) {
        self.0.task_started(t)
    }
    fn task_finished(&self, t: &TaskEnd<'_>) {
        self.0.task_finished(t)
    }
    fn run_finished(&self, r: &RunInfo, e: Option<&dagger::Error>) {
        self.0.run_finished(r, e)
    }
}

#[test]
fn nested_runs_are_marked_and_recorded() {
    #[task]
    fn inner(x: u64) -> u64 {
        dag! { let a = add(x, 1); let b = add(a, 1); b }
            .run()
            .expect("inner graph")
    }
    watchdog(30, || {
        let rt = runtime(2);
        let recorder = Recorder::new();
        let _g = rt.observe(recorder.clone());
        let v = dag! { let a = inner(1); a }.run_on(&rt).unwrap();
        assert_eq!(v, 3);
        let trace = recorder.trace();
        // The inner graph ran on the default runtime, which this recorder does not watch.
        assert_eq!(trace.runs().len(), 1);
        assert_eq!(trace.tasks().len(), 1);
    });
}

/// The `DAGGER_TRACE` child: runs a small graph. Run alone it is an ordinary test.
#[test]
fn env_trace_child() {
    let v = dag! { let a = make(10); let s = total(&a); s }
        .run()
        .unwrap();
    assert_eq!(v, 45);
}

fn run_child(trace_value: &str) -> std::process::Output {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "env_trace_child",
            "--test-threads=1",
            "--nocapture",
        ])
        .env("DAGGER_TRACE", trace_value)
        .output()
        .expect("run the test binary again")
}

#[test]
fn dagger_trace_env_writes_every_format_at_exit() {
    let dir = std::env::temp_dir().join(format!("dagger-env-trace-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = run_child(&format!("{}/", dir.display()));
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tasks = task_events(&std::fs::read_to_string(dir.join("trace.json")).unwrap());
    assert_eq!(tasks, 2, "make and total");
    roxmltree::Document::parse(&std::fs::read_to_string(dir.join("gantt.svg")).unwrap()).unwrap();
    parse_dot(&std::fs::read_to_string(dir.join("graph.dot")).unwrap());
    assert!(std::fs::read_to_string(dir.join("summary.txt"))
        .unwrap()
        .contains("sum-up"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dagger_trace_env_with_a_bad_path_warns_and_keeps_working() {
    let out = run_child("/nonexistent-dagger-dir/trace.json");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the program's work must not fail because of tracing: {stderr}"
    );
    assert!(
        stderr.contains("is not writable") && stderr.contains("tracing is off"),
        "{stderr}"
    );
    let out = run_child("trace.unknown");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success());
    assert!(stderr.contains("no known format"), "{stderr}");
}

#[cfg(feature = "tracing")]
mod tracing_spans {
    use std::sync::Mutex;

    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    use super::*;

    #[derive(Default)]
    struct SpanNames(Mutex<Vec<String>>);

    struct Collect(Arc<SpanNames>);

    impl Subscriber for Collect {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, span: &Attributes<'_>) -> Id {
            struct Task(String);
            impl tracing::field::Visit for Task {
                fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                    if field.name() == "task" {
                        self.0 = value.to_owned();
                    }
                }
                fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
            }
            let mut task = Task(String::new());
            span.record(&mut task);
            let mut names = self.0 .0.lock().unwrap();
            names.push(format!("{}:{}", span.metadata().name(), task.0));
            Id::from_u64(names.len() as u64)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn one_span_per_task() {
        let names = Arc::new(SpanNames::default());
        let dispatch = tracing::Dispatch::new(Collect(names.clone()));
        // Worker threads use the global default, so set it for the whole process.
        tracing::dispatcher::set_global_default(dispatch).unwrap();
        #[task]
        fn traced_source() -> u64 {
            20
        }
        #[task]
        fn traced_sink(x: u64) -> u64 {
            x + 1
        }
        let rt = runtime(2);
        let v = dag! { let a = traced_source(); let b = traced_sink(a); b }
            .run_on(&rt)
            .unwrap();
        assert_eq!(v, 21);
        // Other tests run graphs at the same time: look at this test's tasks only.
        let mut seen: Vec<String> = names
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.contains("traced_"))
            .cloned()
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            ["dagger_task:traced_sink", "dagger_task:traced_source"]
        );
    }
}

#[test]
fn spawned_tasks_are_observed_too() {
    watchdog(30, || {
        let rt = runtime(2);
        let recorder = Recorder::new();
        let _g = rt.observe(recorder.clone());
        let a = rt.spawn(|| 2u64);
        let b = rt.spawn_with(&a, |x: &u64| x * 3);
        let bad = rt.spawn_with(&b, |_: &u64| -> u64 { panic!("observed failure") });
        assert_eq!(b.fetch().unwrap(), 6);
        assert!(bad.wait().is_err());
        let trace = recorder.trace();
        assert_eq!(trace.tasks().len(), 3, "two successes and one failure");
        assert!(trace
            .tasks()
            .iter()
            .all(|t| t.name.contains("spawned_tasks_are_observed_too")));
        assert_eq!(
            trace.tasks().iter().filter(|t| t.error.is_some()).count(),
            1
        );
        assert_eq!(task_events(&trace.to_chrome_json()), 3);
        roxmltree::Document::parse(&trace.to_svg_gantt().unwrap()).unwrap();
    });
}

/// Stands in for a GPU task: a device backend notes the stream and the bytes copied.
#[task]
fn fake_copy(n: u64) -> u64 {
    dagger::observe::note_device("cuda:7", 3);
    dagger::observe::note_bytes_moved(n * 4);
    n
}

#[test]
fn device_notes_reach_the_trace_and_the_stream_tracks() {
    watchdog(30, || {
        let rt = runtime(2);
        // Notes from an unobserved task must not leak into the next observed one.
        dagger::observe::note_device("cuda:9", 9);
        let recorder = Recorder::new();
        let _observing = rt.observe(recorder.clone());
        let n = dag! { let a = fake_copy(10); let b = make(a); total(&b) }
            .run_on(&rt)
            .unwrap();
        let spawned = rt.spawn_with((), || fake_copy(5));
        assert_eq!(spawned.fetch().unwrap(), 5);
        assert_eq!(n, 45);
        let trace = recorder.trace();
        let copies: Vec<_> = trace
            .tasks()
            .iter()
            .filter(|t| t.device.is_some())
            .collect();
        assert_eq!(copies.len(), 2, "{:?}", trace.tasks());
        assert!(copies
            .iter()
            .all(|t| t.device == Some(("cuda:7".to_owned(), 3))));
        let mut bytes: Vec<u64> = copies.iter().map(|t| t.bytes_moved).collect();
        bytes.sort();
        assert_eq!(bytes, vec![20, 40]);
        assert_eq!(trace.streams(), vec![("cuda:7".to_owned(), 3)]);
        let json: serde_json::Value = serde_json::from_str(&trace.to_chrome_json()).unwrap();
        let text = json.to_string();
        assert!(text.contains("cuda:7 stream 3"), "no stream track");
        assert!(!text.contains("cuda:9"), "a stale note leaked");
    });
}

#[test]
fn a_detached_observer_is_let_go_by_every_worker() {
    watchdog(30, || {
        let rt = runtime(2);
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let guard = rt.observe(DropFlag(dropped.clone()));
        // Static runs started on a worker and spawned tasks put the observer list in the
        // workers' caches.
        rt.install(|| {
            for x in 0..100 {
                dag! { let a = add(x, 1); let b = add(a, x); b }
                    .run_on(&rt)
                    .unwrap();
            }
        });
        let spawned: Vec<_> = (0..100u64).map(|x| rt.spawn(move || x + 1)).collect();
        for handle in &spawned {
            handle.wait().unwrap();
        }
        // A fan-out runs its ready tasks in batches: workers keep the cache between them.
        let root = rt.spawn(|| 1u64);
        let fan: Vec<_> = (0..100u64)
            .map(|x| rt.spawn_with(&root, move |r: &u64| r + x))
            .collect();
        for (x, handle) in fan.into_iter().enumerate() {
            assert_eq!(handle.fetch().unwrap(), 1 + x as u64);
        }
        assert!(!dropped.load(Ordering::SeqCst), "still attached");
        drop(guard);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "a worker still holds the detached observer"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

#[test]
fn recording_on_many_threads_while_traces_are_taken_loses_nothing() {
    watchdog(120, || {
        let rt = runtime(4);
        let recorder = Recorder::new();
        let _g = rt.observe(recorder.clone());
        let done = std::sync::atomic::AtomicBool::new(false);
        // Under valgrind (light), where threads take turns, the reader's traces slow the
        // writers down: a smaller tree keeps the test within its watchdog.
        let depth = if common::light() { 10 } else { 13 };
        let expected = (1usize << depth) - 2;
        std::thread::scope(|s| {
            // Readers take traces while the workers write their logs.
            s.spawn(|| {
                let mut last = 0;
                while !done.load(Ordering::SeqCst) {
                    let seen = recorder.trace().tasks().len();
                    assert!(seen >= last, "a trace lost tasks: {seen} after {last}");
                    assert!(seen <= 3 * expected + 6, "{seen} tasks of {expected}");
                    last = seen;
                    if common::light() {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                }
            });
            for round in 0..3 {
                rt.install(|| spawn_tree(depth, 1));
                // Static runs interleave with the spawned tasks in the same logs.
                dag! { let a = add(round, 1); let b = add(a, 2); b }
                    .run_on(&rt)
                    .unwrap();
            }
            done.store(true, Ordering::SeqCst);
        });
        let trace = recorder.trace();
        let static_runs: HashSet<u64> = trace.runs().iter().map(|r| r.id).collect();
        let spawned: Vec<_> = trace
            .tasks()
            .iter()
            .filter(|t| !static_runs.contains(&t.run))
            .collect();
        assert_eq!(spawned.len(), 3 * expected);
        let ids: HashSet<usize> = spawned.iter().map(|t| t.node).collect();
        assert_eq!(ids.len(), spawned.len(), "spawned task ids are unique");
        assert!(spawned.iter().all(|t| t.start_ns <= t.end_ns));
        assert_eq!(trace.runs().len(), 3);
        for run in trace.runs() {
            let tasks: Vec<_> = trace.tasks().iter().filter(|t| t.run == run.id).collect();
            assert_eq!(tasks.len(), 2);
            let end = run.end_ns.expect("finished");
            assert!(tasks
                .iter()
                .all(|t| run.start_ns <= t.start_ns && t.end_ns <= end));
            assert_eq!(end, tasks.iter().map(|t| t.end_ns).max().unwrap());
        }
        recorder.clear();
        assert_eq!(recorder.task_count(), 0);
        assert!(recorder.trace().runs().is_empty());
    });
}

#[test]
fn observers_attached_and_detached_while_tasks_run_see_each_task_whole() {
    /// Counts the starts and ends of spawned tasks it sees.
    struct Pairs(Arc<(AtomicUsize, AtomicUsize)>);
    impl Observer for Pairs {
        fn task_started(&self, task: &TaskStart) {
            if task.graph().is_none() {
                self.0 .0.fetch_add(1, Ordering::SeqCst);
            }
        }
        fn task_finished(&self, task: &TaskEnd<'_>) {
            if task.graph().is_none() {
                self.0 .1.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    watchdog(120, || {
        let rt = runtime(4);
        let recorder = Recorder::new();
        let _recording = rt.observe(recorder.clone());
        let depth = 13;
        let expected = (1usize << depth) - 2;
        let done = std::sync::atomic::AtomicBool::new(false);
        let first = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let first_guard = rt.observe(Pairs(first.clone()));
        let counted = std::thread::scope(|s| {
            // Observers come and go while the trees run: the recorder's list changes
            // from a lone recorder to a mixed one and back.
            let toggler = s.spawn(|| {
                let mut all = vec![first.clone()];
                std::thread::sleep(Duration::from_millis(2));
                drop(first_guard);
                while !done.load(Ordering::SeqCst) {
                    let counts = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
                    let guard = rt.observe(Pairs(counts.clone()));
                    std::thread::sleep(Duration::from_micros(300));
                    drop(guard);
                    std::thread::sleep(Duration::from_micros(300));
                    all.push(counts);
                }
                all
            });
            for _ in 0..3 {
                assert_eq!(rt.install(|| spawn_tree(depth, 1)), tree_xor(depth));
            }
            done.store(true, Ordering::SeqCst);
            toggler.join().unwrap()
        });
        assert_eq!(
            recorder.task_count(),
            3 * expected,
            "the recorder saw every task"
        );
        let mut starts = 0;
        for counts in &counted {
            let (started, ended) = (
                counts.0.load(Ordering::SeqCst),
                counts.1.load(Ordering::SeqCst),
            );
            assert_eq!(
                started, ended,
                "an observer sees the end of each task it saw start"
            );
            starts += started;
        }
        assert!(
            starts > 0,
            "the first observer was attached when the trees started"
        );
        assert!(starts <= 3 * expected * counted.len());
    });
}

/// A binary tree of nested spawns, `2^depth - 2` tasks below the caller; returns the
/// xor of its leaves' numbers.
fn spawn_tree(depth: u32, i: u64) -> u64 {
    if depth == 1 {
        return i;
    }
    let left = spawn(move || spawn_tree(depth - 1, 2 * i));
    let right = spawn(move || spawn_tree(depth - 1, 2 * i + 1));
    left.fetch().unwrap() ^ right.fetch().unwrap()
}

/// What `spawn_tree(depth, 1)` returns: the xor of its leaves' numbers.
fn tree_xor(depth: u32) -> u64 {
    let leaves = 1u64 << (depth - 1);
    (leaves..2 * leaves).fold(0, |acc, i| acc ^ i)
}

/// A recorder's buffers are reused by the next one (see `Recorder`): the next recording
/// holds only its own runs and tasks, on any number of threads.
#[test]
fn a_new_recorder_sees_only_its_own_runs_and_tasks() {
    watchdog(60, || {
        let rt = runtime(2);
        for round in 1..=5_u64 {
            let recorder = Recorder::new();
            let guard = rt.observe(recorder.clone());
            let handles: Vec<_> = (0..100 * round).map(|i| rt.spawn(move || i)).collect();
            for h in handles {
                h.fetch().unwrap();
            }
            let (a, b) = dag! { let a = make(3); let b = total(&a); (a, b) }
                .run_on(&rt)
                .unwrap();
            assert_eq!((a.len(), b), (3, 3));
            drop(guard);
            let trace = recorder.trace();
            let graph_runs = trace.runs().iter().filter(|r| r.graph.is_some()).count();
            assert_eq!(graph_runs, 1, "round {round}: one dag! run");
            assert_eq!(
                trace.tasks().len() as u64,
                100 * round + 2,
                "round {round}: its spawned tasks and two nodes, nothing older"
            );
            assert_eq!(recorder.task_count() as u64, 100 * round + 2);
        }
    });
}
