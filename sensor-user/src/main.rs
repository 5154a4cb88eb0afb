fn main() -> anyhow::Result<()> {
    let only: Vec<String> = std::env::args().skip(1).collect();
    let _e = vigil::linux::loader::load(&only)?;
    println!("loaded");
    Ok(())
}
