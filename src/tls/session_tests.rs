//! Both sides of a [`Session`] talking through memory, and each against
//! rustls's own buffered connections: the handshake, data both ways, records
//! split anywhere, close_notify, a peer that does not speak TLS.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConnection, ServerConfig, ServerConnection};

use super::*;
use crate::tls::{client_config, provider, Trust};

/// What a side sent, waiting for the other to read it.
#[derive(Default)]
struct Wire(Vec<u8>);

impl Transmit for &mut Wire {
    fn transmit(&mut self, tls: &[u8]) -> io::Result<()> {
        self.0.extend_from_slice(tls);
        Ok(())
    }
}

fn server_config() -> Arc<ServerConfig> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
    Arc::new(config)
}

fn pair() -> (ServerSession, ClientSession) {
    let server = ServerSession::server(server_config()).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let client = ClientSession::client(client_config(&Trust::Insecure).unwrap(), name).unwrap();
    (server, client)
}

/// Hand `wire`'s bytes to `to`, `step` at a time, as reads of a socket would;
/// what `to` sends back goes to `back`, what it decrypts is returned.
fn deliver<S: Side>(wire: &mut Wire, to: &mut Session<S>, step: usize, back: &mut Wire) -> Vec<u8> {
    let (mut buf, mut room) = (vec![0; 96 * 1024], vec![0; 96 * 1024]);
    let mut got = Vec::new();
    let bytes = std::mem::take(&mut wire.0);
    for piece in bytes.chunks(step) {
        let c = to.unload(&mut buf);
        buf[c..c + piece.len()].copy_from_slice(piece);
        let mut out = Out::new(&mut room, &mut *back);
        to.receive(&mut buf[..c + piece.len()], &mut |d| got.extend_from_slice(d), &mut out)
            .unwrap();
        out.finish().unwrap();
        assert!(to.carried() <= MAX_RECORD || to.handshaking(), "carried {}", to.carried());
    }
    got
}

fn handshake(server: &mut ServerSession, client: &mut ClientSession) {
    let (mut up, mut down) = (Wire::default(), Wire::default());
    let mut room = vec![0; 64 * 1024];
    let mut out = Out::new(&mut room, &mut up);
    client.flush(&mut out).unwrap();
    out.finish().unwrap();
    for _ in 0..4 {
        deliver(&mut up, server, usize::MAX, &mut down);
        deliver(&mut down, client, usize::MAX, &mut up);
    }
    assert!(!server.handshaking() && !client.handshaking());
    assert!(up.0.is_empty() && down.0.is_empty());
}

fn send<S: Side>(from: &mut Session<S>, data: &[u8], to: &mut Wire) {
    let mut room = vec![0; 64 * 1024];
    let mut out = Out::new(&mut room, to);
    assert!(from.send(data, &mut out).unwrap());
    out.finish().unwrap();
}

#[test]
fn both_sides_shake_hands_echo_and_close_with_close_notify() {
    let (mut server, mut client) = pair();
    let (mut up, mut down) = (Wire::default(), Wire::default());
    let mut room = vec![0; 64 * 1024];
    let mut out = Out::new(&mut room, &mut down);
    assert!(!server.send(b"too early", &mut out).unwrap(), "no key before the handshake");
    assert_eq!(out.gathered(), 0);
    handshake(&mut server, &mut client);
    send(&mut client, b"INI ADALAH DATA", &mut up);
    let got = deliver(&mut up, &mut server, usize::MAX, &mut down);
    assert_eq!(got, b"INI ADALAH DATA");
    send(&mut server, &got, &mut down);
    assert_eq!(deliver(&mut down, &mut client, usize::MAX, &mut up), b"INI ADALAH DATA");
    // The client's close_notify ends the server's input; the server answers with its own.
    let mut out = Out::new(&mut room, &mut up);
    assert!(client.close(&mut out).unwrap() && client.close_sent());
    out.finish().unwrap();
    assert!(deliver(&mut up, &mut server, usize::MAX, &mut down).is_empty());
    assert!(server.peer_closed());
    let mut out = Out::new(&mut room, &mut down);
    assert!(server.close(&mut out).unwrap());
    out.finish().unwrap();
    deliver(&mut down, &mut client, usize::MAX, &mut up);
    assert!(client.peer_closed());
    assert_eq!((server.held(), client.held()), (0, 0), "nothing held once idle");
}

#[test]
fn records_split_anywhere_carry_at_most_one_record_and_nothing_after() {
    let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for step in [1, 7, 1000, 16_389, 65_536] {
        let (mut server, mut client) = pair();
        handshake(&mut server, &mut client);
        let (mut up, mut down) = (Wire::default(), Wire::default());
        send(&mut client, &data, &mut up);
        assert_eq!(deliver(&mut up, &mut server, step, &mut down), data, "step {step}");
        assert_eq!(server.held(), 0, "step {step}: every record was whole at the end");
    }
}

#[test]
fn a_peer_that_does_not_speak_tls_is_an_error_and_gets_an_alert() {
    let (mut server, _) = pair();
    let mut buf = *b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let (mut back, mut room) = (Wire::default(), vec![0; 64 * 1024]);
    let mut out = Out::new(&mut room, &mut back);
    let result = server.receive(&mut buf, &mut |_| panic!("no data"), &mut out);
    assert!(matches!(result, Err(Error::Tls(rustls::Error::InvalidMessage(_)))), "{result:?}");
    out.finish().unwrap();
    assert_eq!(back.0.first(), Some(&21), "an alert record: {:?}", back.0);
    assert_eq!(server.first_byte(), Some(b'G'));
}

#[test]
fn each_side_talks_to_rustls_own_buffered_connections() {
    // Our server against rustls's ClientConnection.
    let mut server = ServerSession::server(server_config()).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut theirs = ClientConnection::new(client_config(&Trust::Insecure).unwrap(), name).unwrap();
    theirs.writer().write_all(b"hello from rustls").unwrap();
    let mut got = Vec::new();
    for _ in 0..4 {
        let (mut up, mut down) = (Wire::default(), Wire::default());
        theirs.write_tls(&mut up.0).unwrap();
        got.extend(deliver(&mut up, &mut server, usize::MAX, &mut down));
        theirs.read_tls(&mut down.0.as_slice()).unwrap();
        theirs.process_new_packets().unwrap();
    }
    assert_eq!(got, b"hello from rustls");
    let mut down = Wire::default();
    send(&mut server, b"and back", &mut down);
    theirs.read_tls(&mut down.0.as_slice()).unwrap();
    theirs.process_new_packets().unwrap();
    let mut echo = [0; 8];
    theirs.reader().read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"and back");

    // Our client against rustls's ServerConnection.
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = ClientSession::client(client_config(&Trust::Insecure).unwrap(), name).unwrap();
    let mut theirs = ServerConnection::new(server_config()).unwrap();
    let (mut up, mut room) = (Wire::default(), vec![0; 64 * 1024]);
    let mut out = Out::new(&mut room, &mut up);
    client.flush(&mut out).unwrap();
    out.finish().unwrap();
    for _ in 0..4 {
        theirs.read_tls(&mut up.0.as_slice()).unwrap();
        up.0.clear();
        theirs.process_new_packets().unwrap();
        let mut down = Wire::default();
        theirs.write_tls(&mut down.0).unwrap();
        deliver(&mut down, &mut client, usize::MAX, &mut up);
    }
    assert!(!client.handshaking() && !theirs.is_handshaking());
    send(&mut client, b"to rustls", &mut up);
    theirs.read_tls(&mut up.0.as_slice()).unwrap();
    theirs.process_new_packets().unwrap();
    let mut data = [0; 9];
    theirs.reader().read_exact(&mut data).unwrap();
    assert_eq!(&data, b"to rustls");
}
