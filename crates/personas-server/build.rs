//! The UI (`apps/ui/dist`) is embedded in release builds and read from disk in debug builds.
//! Make sure the folder exists (so debug builds look for it at run time even when the UI is built
//! after the server) and rebuild when its contents change (so release builds embed the new UI).
use std::path::Path;

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../apps/ui/dist");
    let _ = std::fs::create_dir_all(&dist);
    println!("cargo:rerun-if-changed={}", dist.display());
}
