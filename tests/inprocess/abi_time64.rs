//! The armv7 time64 trap: alsa-lib built against musl >= 1.2 headers uses a 64-bit
//! `time_t`, while the libc crate defaults to 32-bit on 32-bit musl. If Rust's
//! `snd_htimestamp_t` is smaller than what alsa-lib writes, every timestamp call corrupts
//! the stack. This test asks the real (statically linked, on musl targets) alsa-lib to
//! write one and compares the byte count with Rust's view of the type. It must pass on
//! every target; on armv7 it fails without `--cfg libc_unstable_musl_v1_2`
//! (`.cargo/config.toml`).

#[test]
fn alsa_htimestamp_has_the_size_rust_expects() {
    const CANARY: u8 = 0xAA;
    let mut status: *mut alsa_sys::snd_pcm_status_t = std::ptr::null_mut();
    // SAFETY: snd_pcm_status_malloc allocates a zeroed status object or returns an error.
    let rc = unsafe { alsa_sys::snd_pcm_status_malloc(&mut status) };
    assert_eq!(rc, 0, "snd_pcm_status_malloc failed");
    // A buffer larger than any plausible timespec, filled with a canary: alsa-lib writes
    // its own idea of the struct (zeros from the fresh status) and leaves the rest alone.
    let mut buf = [CANARY; 32];
    // SAFETY: buf is 32 bytes, more than either ABI's timespec (8 or 16 bytes).
    unsafe {
        alsa_sys::snd_pcm_status_get_htstamp(status, buf.as_mut_ptr().cast());
        alsa_sys::snd_pcm_status_free(status);
    }
    let written = buf.iter().take_while(|b| **b != CANARY).count();
    assert_eq!(
        written,
        std::mem::size_of::<alsa_sys::snd_htimestamp_t>(),
        "alsa-lib writes {written} bytes into snd_htimestamp_t but Rust thinks it has {}: \
         the time_t ABI of the libc crate and alsa-lib differ (armv7 needs \
         --cfg libc_unstable_musl_v1_2)",
        std::mem::size_of::<alsa_sys::snd_htimestamp_t>()
    );
}
