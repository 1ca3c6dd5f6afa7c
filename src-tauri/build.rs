fn main() {
    // The window embeds ui/dist (tauri.conf.json's frontendDist) when this crate compiles.
    // Cargo does not know that: a rebuilt UI alone left the app showing the old one.
    println!("cargo:rerun-if-changed=../ui/dist");
    tauri_build::build()
}
