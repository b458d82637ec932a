// No console window on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    // A run's protocol tools: the engine starts `<this binary> mcp` as the run's MCP server,
    // exactly as the CLI's `personas mcp`.
    if std::env::args().nth(1).as_deref() == Some("mcp") {
        return personas_desktop_lib::mcp::serve();
    }
    personas_desktop_lib::run();
    std::process::ExitCode::SUCCESS
}
