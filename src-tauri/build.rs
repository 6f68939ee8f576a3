//! Embeds the Tauri config, capabilities and the built UI (dist/) into the app.
fn main() {
    tauri_build::build()
}
