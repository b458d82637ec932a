//! Updates: the feed is a signed manifest (Tauri's `latest.json`, produced by the release
//! workflow); the downloaded installer must carry a signature by the key whose public half is
//! in `tauri.conf.json`, and for the version announced. Nothing installs without the person's
//! consent: the window shows the offer and calls `install_update` with the version they accepted.
//! `PERSONAS_UPDATE_FEED` points the app at another feed (a staging channel).

use crate::commands::unavailable;
use personas_api::ApiError;
use tauri::AppHandle;
use tauri_plugin_updater::{Update, UpdaterExt};

fn updater(app: &AppHandle) -> Result<tauri_plugin_updater::Updater, ApiError> {
    let mut builder = app.updater_builder();
    if let Ok(feed) = std::env::var("PERSONAS_UPDATE_FEED") {
        let url = feed
            .parse()
            .map_err(|e| ApiError::invalid("PERSONAS_UPDATE_FEED", format!("not a URL: {e}")))?;
        builder = builder
            .endpoints(vec![url])
            .map_err(|e| unavailable(format!("update feed: {e}")))?;
    }
    builder
        .build()
        .map_err(|e| unavailable(format!("cannot check for updates: {e}")))
}

pub async fn check(app: &AppHandle) -> Result<Option<Update>, ApiError> {
    updater(app)?
        .check()
        .await
        .map_err(|e| unavailable(format!("cannot check for updates: {e}")))
}

pub async fn install(app: &AppHandle, version: &str) -> Result<(), ApiError> {
    let Some(update) = check(app).await? else {
        return Err(ApiError::new(
            personas_api::Code::Conflict,
            "no update is available any more",
        ));
    };
    if update.version != version {
        return Err(ApiError::new(
            personas_api::Code::Conflict,
            format!(
                "the feed now offers {} instead of {version}; check again",
                update.version
            ),
        ));
    }
    update
        .download_and_install(|_, _| {}, || {})
        .await
        .map_err(|e| unavailable(format!("the update failed: {e}")))?;
    tracing::info!(%version, "update installed; restarting");
    app.restart();
}
