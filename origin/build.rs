//! Links libsrt (Debian: `libsrt-openssl-dev`, which puts `libsrt.so` on the
//! default linker path). Set `SRT_LIB_DIR` to link one from elsewhere.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SRT_LIB_DIR");
    if let Ok(dir) = std::env::var("SRT_LIB_DIR") {
        println!("cargo:rustc-link-search=native={dir}");
    }
    println!("cargo:rustc-link-lib=dylib=srt");
}
