//! The memory baseline for the desktop benchmark: a blank Tauri 2 window (an empty HTML page
//! from a custom scheme, so the webview starts its web process as a real page would; no plugins,
//! no engine), built with the same Tauri, features and profile as the app.
//! `cargo build --release -p personas-desktop --features tauri/custom-protocol --example blank`
fn main() {
    let mut context = tauri::generate_context!();
    for w in &mut context.config_mut().app.windows {
        w.url = tauri::WebviewUrl::External("blank://localhost/".parse().expect("url"));
        w.title = "Blank".into();
    }
    tauri::Builder::default()
        .register_uri_scheme_protocol("blank", |_ctx, _req| {
            tauri::http::Response::builder()
                .header("content-type", "text/html")
                .body(b"<!doctype html><html><body></body></html>".to_vec())
                .expect("response")
        })
        .run(context)
        .expect("cannot run the blank window");
}
