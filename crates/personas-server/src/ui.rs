//! The built UI (`apps/ui/dist`), served at `/`.
//!
//! Release builds embed the files in the binary, so `personas up` serves the UI it was built
//! with and nothing on disk can swap it; debug builds read them from `apps/ui/dist` at request
//! time (so `vite build` shows up without recompiling). Unknown paths get `index.html`: the app
//! routes on the client.

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../apps/ui/dist/"]
#[allow_missing = true]
struct Assets;

/// The page shown when the UI was not built (a plain `cargo build`).
const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>Personas</title>\
<body style=\"font-family:system-ui;max-width:40rem;margin:4rem auto;line-height:1.5\">\
<h1>Personas is running</h1><p>The web UI was not built into this binary. Run <code>make up</code> \
(it builds the UI, then the runtime), or <code>npm ci &amp;&amp; npm run build</code> in <code>apps/ui</code>.</p>\
<p>The API is at <code>/api/</code>; its description at <code>/api/openapi.json</code>.</p></body>";

/// Content-Security-Policy of the UI: only its own scripts, styles, images and this server.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
base-uri 'none'; form-action 'none'";

pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let (file, name) = match Assets::get(path).filter(|_| !path.is_empty()) {
        Some(f) => (f, path),
        None => match Assets::get("index.html") {
            Some(f) => (f, "index.html"),
            None => {
                return page(
                    StatusCode::OK,
                    NOT_BUILT.as_bytes().to_vec(),
                    "text/html; charset=utf-8",
                    false,
                );
            }
        },
    };
    let mime = file.metadata.mimetype().to_string();
    // Vite puts content-hashed files under assets/: they never change under their name.
    let immutable = name.starts_with("assets/");
    page(StatusCode::OK, file.data.into_owned(), &mime, immutable)
}

fn page(status: StatusCode, body: Vec<u8>, mime: &str, immutable: bool) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// True when the UI is built into (or next to) this binary.
pub fn available() -> bool {
    Assets::get("index.html").is_some()
}
