//! The GraphQL console at `GET /graphql`: GraphiQL, served entirely from this binary so that it
//! works without internet, with a bar for the workspace's API key (`console.js`).
//!
//! GraphiQL and React are the npm releases' browser builds, kept in `api/assets/graphiql/`
//! (versions, integrity and how to refresh them in its README.md). They are embedded at compile
//! time and served under `/graphql/assets/{file}`; the page asks for them with `?v=` and a hash
//! of their bytes, so they can be cached for good and a new build still gets new files.

use std::sync::LazyLock;

use axum::{
    extract::Path,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    Asset {
        name: "graphiql.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/graphiql.min.js"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        bytes: include_bytes!("../assets/graphiql/graphiql.min.css"),
    },
    Asset {
        name: "react.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/react-dom.production.min.js"),
    },
    Asset {
        name: "console.js",
        content_type: JS,
        bytes: include_bytes!("console.js"),
    },
    Asset {
        name: "console.css",
        content_type: CSS,
        bytes: include_bytes!("console.css"),
    },
];

/// Everything the page may load comes from this server. GraphiQL sets inline styles and embeds
/// its fonts as `data:` URLs; subscriptions connect to `/graphql/ws` (`'self'` covers ws:).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `console.html` with each `{{file}}` replaced by a hash of that asset.
static PAGE: LazyLock<String> = LazyLock::new(|| {
    ASSETS
        .iter()
        .fold(include_str!("console.html").to_owned(), |page, asset| {
            page.replace(&format!("{{{{{}}}}}", asset.name), &version(asset.bytes))
        })
});

/// `GET /graphql`: the console's page.
pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Always asked again, so a new build's asset hashes are seen at once.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE.as_str(),
    )
        .into_response()
}

/// `GET /graphql/assets/{file}`: one of the console's files, cached for a year (the page's
/// `?v=` changes with the bytes).
pub async fn asset(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.bytes,
    )
        .into_response()
}

/// The first 16 hex digits of the bytes' SHA-256: enough to tell one build's file from another's.
fn version(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
