//! Declares the `loom` cfg so `RUSTFLAGS="--cfg loom"` model-checking builds don't warn.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
