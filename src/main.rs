fn main() -> std::process::ExitCode {
    uworker_image::cli::main()
}
