//! The memory baseline for the desktop benchmark: a blank Tauri 2 window (about:blank, no
//! plugins, no engine), built with the same Tauri, features and profile as the app.
//! `cargo run --release -p personas-desktop --example blank --features custom-protocol`
fn main() {
    let mut context = tauri::generate_context!();
    for w in &mut context.config_mut().app.windows {
        w.url = tauri::WebviewUrl::External("about:blank".parse().expect("url"));
        w.title = "Blank".into();
    }
    tauri::Builder::default()
        .run(context)
        .expect("cannot run the blank window");
}
