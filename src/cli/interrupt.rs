//! Ctrl-C for the whole process: the first press asks every long step (training, the
//! tutorial's steps) to stop at its next checkpoint, keeping what finished; a second press
//! quits at once. The handler is installed once, on first use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// The flag a first Ctrl-C sets.
pub fn flag() -> &'static AtomicBool {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Without a handler (none can be installed) Ctrl-C simply ends the process.
        let _ = ctrlc::set_handler(|| {
            if REQUESTED.swap(true, Ordering::Relaxed) {
                std::process::exit(130);
            }
            eprintln!("\nStopping after the current step (press Ctrl-C again to quit at once)…");
        });
    });
    &REQUESTED
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    flag().load(Ordering::Relaxed)
}
