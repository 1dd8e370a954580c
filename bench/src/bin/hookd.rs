//! A token hook receiver for the load test (`loadtest/hooks.sh`): answers every request on
//! kept-alive connections with `200` and a session that sets one access-token claim, as a small
//! hook service would, so the run measures what calling a hook costs the server.
//!
//! `hookd --port 0` prints `listening on 127.0.0.1:PORT`, then serves until killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 49\r\n\r\n{\"session\":{\"access_token\":{\"hooked\":\"yes\"}}}    ";

fn serve(sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let Ok(mut write) = sock.try_clone() else { return };
    let mut r = BufReader::new(sock);
    let mut line = String::new();
    loop {
        let mut len = 0usize;
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() || write.write_all(ANSWER).is_err() {
            return;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = args.iter().position(|a| a == "--port").and_then(|i| args.get(i + 1)).map_or("0", |s| s.as_str());
    let listener = match TcpListener::bind(format!("127.0.0.1:{port}")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hookd: cannot listen: {e}");
            std::process::exit(1);
        }
    };
    if let Ok(a) = listener.local_addr() {
        println!("listening on {a}");
    }
    let _ = std::io::stdout().flush();
    for sock in listener.incoming().flatten() {
        std::thread::spawn(move || serve(sock));
    }
}
