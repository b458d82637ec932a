//! The system tray: the app keeps running there when its window is closed. The icon shows
//! whether the scheduler fires (full colour) or is paused (greyed); the menu opens the window,
//! pauses/resumes the scheduler, lists recent runs and quits.

use crate::runtime::Runtime;
use personas_api::{ApiError, Code};
use personas_core::Execution;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Emitter, Manager};

const TRAY: &str = "main";
const RECENT: u32 = 5;

fn running_icon() -> Image<'static> {
    tauri::include_image!("icons/32x32.png")
}

/// The same icon, grey and faded: the scheduler is paused.
fn paused_icon() -> Image<'static> {
    let icon = running_icon();
    let mut rgba = icon.rgba().to_vec();
    for px in rgba.chunks_exact_mut(4) {
        let grey = ((px[0] as u32 * 30 + px[1] as u32 * 59 + px[2] as u32 * 11) / 100) as u8;
        px[0] = grey;
        px[1] = grey;
        px[2] = grey;
        px[3] /= 2;
    }
    Image::new_owned(rgba, icon.width(), icon.height())
}

/// Shows, un-minimises and focuses the main window.
pub fn show_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Opens the main window on an app path (`/executions/<id>`, `/personas/<name>`).
pub fn open_path(app: &AppHandle, path: &str) {
    show_main(app);
    let _ = app.emit("personas://navigate", path.to_string());
}

fn paused(app: &AppHandle) -> Option<bool> {
    app.state::<Runtime>()
        .state()
        .map(|s| s.engine.scheduler_paused())
}

fn recent_runs(app: &AppHandle) -> Vec<Execution> {
    let rt = app.state::<Runtime>();
    let Some(state) = rt.state() else {
        return Vec::new();
    };
    let filter = personas_store::ExecutionFilter {
        limit: Some(RECENT),
        ..Default::default()
    };
    state
        .engine
        .store()
        .executions()
        .list(&filter)
        .unwrap_or_default()
}

fn build_menu(app: &AppHandle) -> tauri::Result<Menu<tauri::Wry>> {
    let open = MenuItem::with_id(app, "open", "Open Personas", true, None::<&str>)?;
    let toggle = match paused(app) {
        Some(true) => MenuItem::with_id(app, "resume", "Resume scheduler", true, None::<&str>)?,
        Some(false) => MenuItem::with_id(app, "pause", "Pause scheduler", true, None::<&str>)?,
        None => MenuItem::with_id(
            app,
            "pause",
            "Scheduler runs in `personas up`",
            false,
            None::<&str>,
        )?,
    };
    let runs = recent_runs(app);
    let recent = Submenu::with_id(app, "recent", "Recent runs", !runs.is_empty())?;
    for e in &runs {
        let label = format!(
            "{} — {} ({})",
            e.persona_name,
            e.status.as_str(),
            e.queued_at.with_timezone(&chrono::Local).format("%H:%M")
        );
        recent.append(&MenuItem::with_id(
            app,
            format!("run:{}", e.id),
            label,
            true,
            None::<&str>,
        )?)?;
    }
    let quit = MenuItem::with_id(app, "quit", "Quit Personas", true, None::<&str>)?;
    Menu::with_items(
        app,
        &[
            &open,
            &toggle,
            &PredefinedMenuItem::separator(app)?,
            &recent,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )
}

fn tooltip(app: &AppHandle) -> &'static str {
    match paused(app) {
        Some(true) => "Personas — scheduler paused",
        Some(false) => "Personas — scheduler running",
        None => "Personas — attached to personas up",
    }
}

/// Creates the tray icon.
pub fn create(app: &AppHandle) -> tauri::Result<()> {
    let icon = if paused(app) == Some(true) {
        paused_icon()
    } else {
        running_icon()
    };
    TrayIconBuilder::with_id(TRAY)
        .icon(icon)
        .tooltip(tooltip(app))
        .menu(&build_menu(app)?)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "open" => show_main(app),
            "pause" => {
                let _ = set_paused(app, true);
            }
            "resume" => {
                let _ = set_paused(app, false);
            }
            "quit" => app.exit(0),
            id => {
                if let Some(run) = id.strip_prefix("run:") {
                    open_path(app, &format!("/executions/{run}"));
                }
            }
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                show_main(tray.app_handle());
            }
        })
        .build(app)?;
    Ok(())
}

/// Rebuilds the menu, icon and tooltip from the current state (after a run ends, a pause...).
pub fn refresh(app: &AppHandle) {
    let Some(tray) = app.tray_by_id(TRAY) else {
        return;
    };
    if let Ok(menu) = build_menu(app) {
        let _ = tray.set_menu(Some(menu));
    }
    let icon = if paused(app) == Some(true) {
        paused_icon()
    } else {
        running_icon()
    };
    let _ = tray.set_icon(Some(icon));
    let _ = tray.set_tooltip(Some(tooltip(app)));
}

/// Pauses or resumes cron firing, then updates the tray and tells the window.
pub fn set_paused(app: &AppHandle, paused: bool) -> Result<bool, ApiError> {
    let rt = app.state::<Runtime>();
    let Some(state) = rt.state() else {
        return Err(ApiError::new(
            Code::Unavailable,
            "the scheduler runs in `personas up`, not in this window",
        ));
    };
    state.engine.set_scheduler_paused(paused);
    tracing::info!(paused, "scheduler pause toggled");
    refresh(app);
    let _ = app.emit("personas://scheduler", paused);
    Ok(paused)
}
