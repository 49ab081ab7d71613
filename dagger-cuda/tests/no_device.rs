//! Without a usable CUDA device (CI), every entry point returns a clear `Error::Device`,
//! never a panic. A loadable driver library is not a working GPU (a container may have
//! libcuda and no device), so the tests ask for the devices and expect whichever answer
//! they get from every other entry point too.

use dagger_core::Error;
use dagger_cuda::{current, devices, driver_present, with_stream, Gpu, StreamCounts};

fn expect_device_error<T: std::fmt::Debug>(result: Result<T, Error>, what: &str) {
    match result {
        Err(Error::Device(message)) => {
            if !driver_present() {
                assert!(message.contains("no CUDA driver"), "{what}: {message}");
                assert!(
                    message.contains("install the NVIDIA driver"),
                    "{what}: {message}"
                );
            }
        }
        other => panic!("{what}: expected Error::Device, got {other:?}"),
    }
}

/// Whether this machine has a device that opens.
fn usable_gpu() -> bool {
    matches!(devices(), Ok(list) if !list.is_empty()) && Gpu::open(0).is_ok()
}

#[test]
fn every_entry_point_reports_a_missing_device_or_works() {
    if usable_gpu() {
        assert!(current().is_ok());
        let ran: Result<bool, Error> = with_stream(|_stream| Ok(true));
        assert!(ran.unwrap());
        return;
    }
    if let Ok(list) = devices() {
        assert!(list.is_empty(), "devices listed but device 0 does not open");
    } else {
        expect_device_error(devices(), "devices()");
    }
    expect_device_error(Gpu::open(0), "Gpu::open(0)");
    expect_device_error(Gpu::open_with(1, StreamCounts::default()), "Gpu::open_with");
    expect_device_error(current(), "current()");
    expect_device_error(Gpu::default_device(), "Gpu::default_device()");
    let body_ran = std::cell::Cell::new(false);
    let result: Result<(), Error> = with_stream(|_stream| {
        body_ran.set(true);
        Ok(())
    });
    expect_device_error(result, "with_stream");
    assert!(
        !body_ran.get(),
        "a GPU task body must not run without a device"
    );
    // Asking twice gives the same answer (the failed initialisation is remembered).
    expect_device_error(Gpu::open(0), "Gpu::open(0) again");
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
    match (usable_gpu(), result) {
        (false, Err(Mine(message))) => assert!(message.starts_with("device error:"), "{message}"),
        (true, Ok(7)) => {}
        (usable, other) => panic!("usable GPU: {usable}, got {other:?}"),
    }
}
