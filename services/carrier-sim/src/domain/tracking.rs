//! Tracking codes in the Correios (UPU S10) format: two service letters,
//! eight serial digits, a check digit, `BR`.

use super::ServiceLevel;

/// The tracking code of parcel `serial` (taken modulo 10^8).
pub fn tracking_code(service: ServiceLevel, serial: u32) -> String {
    let prefix = match service {
        ServiceLevel::Pac => "PN",
        ServiceLevel::Sedex => "SS",
    };
    let serial = serial % 100_000_000;
    format!("{prefix}{serial:08}{}BR", check_digit(serial))
}

/// The S10 check digit of an 8-digit serial.
pub fn check_digit(serial: u32) -> u32 {
    const WEIGHTS: [u32; 8] = [8, 6, 4, 2, 3, 5, 9, 7];
    let digits = format!("{serial:08}");
    let sum: u32 = digits.bytes().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    match 11 - sum % 11 {
        10 => 0,
        11 => 5,
        d => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_two_letters_nine_digits_and_br() {
        let code = tracking_code(ServiceLevel::Sedex, 47_312_482);
        assert_eq!(code.len(), 13);
        assert!(code.starts_with("SS") && code.ends_with("BR"));
        assert!(code[2..11].bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn the_check_digit_follows_s10() {
        // The UPU S10 standard's example: 47312482 has check digit 9.
        assert_eq!(check_digit(47_312_482), 9);
        assert_eq!(tracking_code(ServiceLevel::Pac, 47_312_482), "PN473124829BR");
    }
}
