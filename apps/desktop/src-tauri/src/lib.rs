//! The Personas desktop app: a Tauri 2 shell around the same runtime `personas up` starts and the
//! same React UI the browser gets.
//!
//! - [`runtime`]: starts the engine in-process (or attaches to a running `personas up`).
//! - [`commands`]: every `personas-api` operation as a command, the event stream as a channel.
//! - [`tray`]: the app lives on in the tray when its window closes; pause/resume the scheduler.
//! - [`notify`]: desktop notifications for finished/failed runs, reviews and messages.
//! - [`update`]: signed update manifest, installed with consent.
//!
//! Deep links (`personas://execution/<id>`, `personas://persona/<name>`) and second launches
//! land in the first instance, which shows its window on that page.
#![forbid(unsafe_code)]

pub mod commands;
pub mod mcp;
pub mod notify;
pub mod runtime;
pub mod tray;
pub mod update;

use runtime::Runtime;
use tauri::{Manager, RunEvent, WindowEvent};
use tauri_plugin_deep_link::DeepLinkExt;

/// The app path a `personas://` link opens, if it is one we know.
pub fn deep_link_path(link: &str) -> Option<String> {
    let url = url::Url::parse(link).ok()?;
    if url.scheme() != "personas" {
        return None;
    }
    // `personas://execution/ID`: the host is the kind, the path the id.
    let kind = url.host_str()?;
    let rest = url.path().trim_matches('/');
    let id = percent_decode(rest);
    if id.is_empty() || id.contains('/') {
        return None;
    }
    let enc = encode_segment(&id);
    match kind {
        "execution" | "executions" | "run" => Some(format!("/executions/{enc}")),
        "persona" | "personas" => Some(format!("/personas/{enc}")),
        // The cloud issue's OAuth callback lands here later.
        _ => None,
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn open_links<'a>(app: &tauri::AppHandle, links: impl IntoIterator<Item = &'a str>) {
    for link in links {
        match deep_link_path(link) {
            Some(path) => {
                tracing::info!(%link, %path, "deep link");
                tray::open_path(app, &path);
            }
            None if link.starts_with("personas:") => {
                tracing::warn!(%link, "unknown personas:// link");
                tray::show_main(app);
            }
            None => {}
        }
    }
}

/// When the process started (for the cold-start measurement).
pub(crate) static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

pub fn run() {
    STARTED.get_or_init(std::time::Instant::now);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PERSONAS_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let app = tauri::Builder::default()
        // First: a second launch hands its arguments to us and exits; a `personas://` link
        // among them reaches `on_open_url` below (the plugin's deep-link feature).
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            tracing::info!(?argv, "second launch");
            tray::show_main(app);
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .manage(commands::Subscriptions::default())
        .invoke_handler(commands::handler())
        .setup(|app| {
            let started = std::time::Instant::now();
            let rt = tauri::async_runtime::block_on(Runtime::start());
            tracing::info!(ms = started.elapsed().as_millis() as u64, "runtime ready");
            let attached = match &rt.mode {
                runtime::Mode::Attached { info, token } => {
                    Some(format!("{}/#token={token}", info.url))
                }
                _ => None,
            };
            app.manage(rt);
            let handle = app.handle().clone();
            if let Some(url) = attached
                && let (Some(w), Ok(url)) = (app.get_webview_window("main"), url.parse())
            {
                let _ = w.navigate(url);
            }
            if let Err(e) = tray::create(&handle) {
                tracing::warn!(error = %e, "no system tray here; closing the window will quit");
            }
            notify::start(&handle);
            #[cfg(any(target_os = "linux", all(debug_assertions, windows)))]
            if let Err(e) = app.deep_link().register_all() {
                tracing::warn!(error = %e, "cannot register the personas:// scheme");
            }
            let links_handle = handle.clone();
            app.deep_link().on_open_url(move |event| {
                let urls: Vec<String> = event.urls().iter().map(|u| u.to_string()).collect();
                open_links(&links_handle, urls.iter().map(String::as_str));
            });
            if let Ok(Some(urls)) = app.deep_link().get_current() {
                let urls: Vec<String> = urls.iter().map(|u| u.to_string()).collect();
                open_links(&handle, urls.iter().map(String::as_str));
            }
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::CloseRequested { api, .. } = event
                && window.label() == "main"
                && window.app_handle().tray_by_id("main").is_some()
            {
                // Keep running in the tray: the scheduler and the bus go on.
                api.prevent_close();
                let _ = window.hide();
                tracing::info!("window closed; still running in the tray");
            }
        })
        .build(tauri::generate_context!())
        .expect("cannot build the Personas app");

    app.run(|app, event| match event {
        // The last window going away is not quitting (the tray keeps us); `Quit` is.
        RunEvent::ExitRequested { api, code, .. }
            if code.is_none() && app.tray_by_id("main").is_some() =>
        {
            api.prevent_exit();
        }
        RunEvent::Exit => {
            tracing::info!("quitting: stopping the runtime");
            let rt = app.state::<Runtime>();
            tauri::async_runtime::block_on(rt.shutdown());
        }
        _ => {}
    });
}

#[cfg(test)]
mod tests {
    use super::deep_link_path;

    #[test]
    fn deep_links_open_known_pages_only() {
        assert_eq!(
            deep_link_path("personas://execution/abc123").as_deref(),
            Some("/executions/abc123")
        );
        assert_eq!(
            deep_link_path("personas://persona/Release%20notes%20writer").as_deref(),
            Some("/personas/Release%20notes%20writer")
        );
        assert_eq!(deep_link_path("personas://persona/"), None);
        assert_eq!(deep_link_path("personas://execution/a/b"), None);
        assert_eq!(deep_link_path("personas://settings/x"), None);
        assert_eq!(deep_link_path("https://execution/abc"), None);
        assert_eq!(deep_link_path("not a url"), None);
    }
}
