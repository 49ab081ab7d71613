//! Without a CUDA driver (CI), every entry point returns a clear `Error::Device`, never
//! a panic. On a machine with a GPU the same calls must succeed instead.

use dagger_core::Error;
use dagger_cuda::{current, devices, driver_present, with_stream, Gpu, StreamCounts};

fn expect_no_driver<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::Device(message)) => {
            assert!(message.contains("no CUDA driver"), "{what}: {message}");
            assert!(
                message.contains("install the NVIDIA driver"),
                "{what}: {message}"
            );
        }
        other => panic!("{what}: expected Error::Device, got {other:?}"),
    }
}

#[test]
fn every_entry_point_reports_a_missing_driver_or_works() {
    if driver_present() {
        // A GPU machine: the same calls work.
        let all = devices().expect("a driver is present");
        assert!(
            !all.is_empty(),
            "a driver with no device should be an error"
        );
        assert!(Gpu::open(0).is_ok());
        assert!(current().is_ok());
        return;
    }
    expect_no_driver(devices(), "devices()");
    expect_no_driver(Gpu::open(0), "Gpu::open(0)");
    expect_no_driver(Gpu::open_with(1, StreamCounts::default()), "Gpu::open_with");
    expect_no_driver(current(), "current()");
    expect_no_driver(Gpu::default_device(), "Gpu::default_device()");
    let body_ran = std::cell::Cell::new(false);
    let result: Result<(), Error> = with_stream(|_stream| {
        body_ran.set(true);
        Ok(())
    });
    expect_no_driver(result, "with_stream");
    assert!(
        !body_ran.get(),
        "a GPU task body must not run without a device"
    );
    // Asking twice gives the same answer (the failed initialisation is remembered).
    expect_no_driver(devices(), "devices() again");
}

#[test]
fn errors_convert_into_the_callers_error_type() {
    #[derive(Debug)]
    struct Mine(String);
    impl From<Error> for Mine {
        fn from(e: Error) -> Self {
            Mine(e.to_string())
        }
    }
    let result: Result<u32, Mine> = with_stream(|_stream| Ok(7));
    match (driver_present(), result) {
        (false, Err(Mine(message))) => assert!(message.starts_with("device error:"), "{message}"),
        (true, Ok(7)) => {}
        (present, other) => panic!("driver present: {present}, got {other:?}"),
    }
}
