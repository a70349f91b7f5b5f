//! PIX "copia e cola" codes: an EMV BR Code payload (tag-length-value
//! fields) ending in its CRC16/CCITT-FALSE checksum, as the Brazilian
//! Central Bank specifies, so the strings look like the real thing.

use kernel::money::Cents;

/// The code a customer pastes into a bank app to pay `amount` for `charge_id`.
pub fn copia_e_cola(charge_id: &str, amount: Cents) -> String {
    let cents = amount.get();
    let account = tlv("00", "br.gov.bcb.pix") + &tlv("25", &format!("pix.feira.local/qr/v2/{charge_id}"));
    let mut payload = String::new();
    payload += &tlv("00", "01");
    payload += &tlv("01", "12");
    payload += &tlv("26", &account);
    payload += &tlv("52", "0000");
    payload += &tlv("53", "986");
    payload += &tlv("54", &format!("{}.{:02}", cents / 100, cents % 100));
    payload += &tlv("58", "BR");
    payload += &tlv("59", "FEIRA PSP SIM");
    payload += &tlv("60", "SAO PAULO");
    payload += &tlv("62", &tlv("05", "***"));
    payload += "6304";
    let crc = crc16(payload.as_bytes());
    format!("{payload}{crc:04X}")
}

fn tlv(id: &str, value: &str) -> String {
    format!("{id}{:02}{value}", value.len().min(99))
}

/// CRC16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF).
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_standard_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn the_code_carries_the_amount_and_a_valid_checksum() {
        let code = copia_e_cola("ch_abc", Cents::parse(2590).unwrap());
        assert!(code.starts_with("000201"));
        assert!(code.contains("540525.90"));
        assert!(code.contains("ch_abc"));
        let (payload, crc) = code.split_at(code.len() - 4);
        assert_eq!(format!("{:04X}", crc16(payload.as_bytes())), crc);
    }
}
