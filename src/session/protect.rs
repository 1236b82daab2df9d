//! Protection of the secret fields of a cached session at rest.
//!
//! On Windows the values are encrypted with DPAPI for the current user
//! (`CryptProtectData`), so another account or another machine cannot read
//! them. Elsewhere they are stored as they are, and the cache file's mode
//! (0600) keeps other users out, as the AWS CLI does for its own caches.

use crate::error::{Error, Result};

/// Prefix of a DPAPI-protected value in the cache file.
#[cfg_attr(not(windows), allow(dead_code))]
const DPAPI_PREFIX: &str = "dpapi:";

/// Protects a secret value for storage.
pub fn protect(value: &str) -> Result<String> {
    #[cfg(windows)]
    {
        use base64::Engine as _;
        let encrypted = dpapi::protect(value.as_bytes())?;
        Ok(format!("{DPAPI_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(encrypted)))
    }
    #[cfg(not(windows))]
    {
        Ok(value.to_owned())
    }
}

/// Reverses [`protect`].
pub fn unprotect(stored: &str) -> Result<String> {
    match stored.strip_prefix(DPAPI_PREFIX) {
        #[cfg(windows)]
        Some(encoded) => {
            use base64::Engine as _;
            let encrypted = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| Error::invalid("SessionCacheCorrupt", "A protected value of the session cache is not base64."))?;
            let plain = dpapi::unprotect(&encrypted)?;
            String::from_utf8(plain)
                .map_err(|_| Error::invalid("SessionCacheCorrupt", "A protected value of the session cache is not UTF-8."))
        }
        #[cfg(not(windows))]
        Some(_) => Err(Error::invalid(
            "SessionCacheProtected",
            "The session cache holds values protected with Windows DPAPI, which this platform cannot read.",
        )),
        None => Ok(stored.to_owned()),
    }
}

// NOTE: this module is compiled on Windows only and was checked against the
// windows 0.62 signatures by reading, not by a Windows build.
#[cfg(windows)]
mod dpapi {
    use windows::Win32::Foundation::{HLOCAL, LocalFree};
    use windows::core::PCWSTR;
    use windows::Win32::Security::Cryptography::{
        CRYPT_INTEGER_BLOB, CRYPTPROTECT_UI_FORBIDDEN, CryptProtectData, CryptUnprotectData,
    };

    use crate::error::{Error, Result};

    pub fn protect(plain: &[u8]) -> Result<Vec<u8>> {
        let input = CRYPT_INTEGER_BLOB { cbData: plain.len() as u32, pbData: plain.as_ptr() as *mut u8 };
        let mut output = CRYPT_INTEGER_BLOB::default();
        // SAFETY: input points at `plain`, alive for the call; output is filled
        // by the API and freed below with LocalFree, as its documentation requires.
        unsafe { CryptProtectData(&input, PCWSTR::null(), None, None, None, CRYPTPROTECT_UI_FORBIDDEN, &mut output) }
            .map_err(|error| Error::internal(format!("DPAPI could not protect the session: {error}")))?;
        Ok(take(output))
    }

    pub fn unprotect(encrypted: &[u8]) -> Result<Vec<u8>> {
        let input = CRYPT_INTEGER_BLOB { cbData: encrypted.len() as u32, pbData: encrypted.as_ptr() as *mut u8 };
        let mut output = CRYPT_INTEGER_BLOB::default();
        // SAFETY: as in protect.
        unsafe { CryptUnprotectData(&input, None, None, None, None, CRYPTPROTECT_UI_FORBIDDEN, &mut output) }.map_err(
            |_| Error::invalid("SessionCacheForeign", "The session cache was protected by another Windows user or machine."),
        )?;
        Ok(take(output))
    }

    fn take(blob: CRYPT_INTEGER_BLOB) -> Vec<u8> {
        // SAFETY: the API returned a buffer of cbData bytes at pbData, owned by us.
        let bytes = unsafe { std::slice::from_raw_parts(blob.pbData, blob.cbData as usize) }.to_vec();
        // SAFETY: pbData was allocated by the API with LocalAlloc.
        unsafe {
            let _ = LocalFree(Some(HLOCAL(blob.pbData.cast())));
        }
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let stored = protect("wJalrXUtnFEMI/K7MDENG").unwrap();
        assert_eq!(unprotect(&stored).unwrap(), "wJalrXUtnFEMI/K7MDENG");
    }
}
