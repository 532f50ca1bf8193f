//! Every backend passes the one public conformance suite
//! (`snap::backend::conformance`), run from outside the library as a
//! backend kept elsewhere would run it: the local directory, the in-memory
//! backend, and the fault-injecting and recording wrappers around them.

use snap::backend::conformance;
use snap::backend::faulty::{Faults, FaultyBackend};
use snap::backend::local::LocalBackend;
use snap::backend::mem::MemBackend;
use snap::backend::recording::RecordingBackend;
use std::sync::Arc;

#[test]
fn every_backend_passes_the_public_conformance_suite() {
    let d = tempfile::tempdir().unwrap();
    let local = LocalBackend::new(d.path().join("local"));
    local.create_layout().unwrap();
    conformance::run(&local);

    conformance::run(&MemBackend::new());

    let wrapped = LocalBackend::new(d.path().join("faulty"));
    wrapped.create_layout().unwrap();
    conformance::run(&FaultyBackend::new(Arc::new(wrapped), Faults::new()));

    let rec = RecordingBackend::new(Arc::new(MemBackend::new()));
    conformance::run(&rec);
    assert!(
        !rec.take().is_empty(),
        "the suite reads through the wrapper"
    );
}
