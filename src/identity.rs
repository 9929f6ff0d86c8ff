//! Who is running this, and where: the user and host names written into holder records,
//! journals and reports.

/// Who a rehearsal (`runbook test`, on the virtual clock) is done by, and where: the same on
/// every machine, so its journal is too.
pub const REHEARSAL: &str = "rehearsal";

/// The user: $USER, else $LOGNAME, else the password database's name for our uid.
pub fn user() -> String {
    if crate::clock::is_virtual() {
        return REHEARSAL.into();
    }
    if let Ok(u) = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        if !u.is_empty() {
            return u;
        }
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy the name out at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    "unknown".into()
}

/// The host name (gethostname), or "unknown".
pub fn host() -> String {
    if crate::clock::is_virtual() {
        return REHEARSAL.into();
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// This process's id as a run records it (0 in a rehearsal, which has no process of its own).
pub fn pid() -> u32 {
    if crate::clock::is_virtual() {
        0
    } else {
        std::process::id()
    }
}
