//! Entry points for the fuzz targets in `metadata/fuzz` (and the smoke test that runs them on
//! generated input): every parser of outside input, fed arbitrary bytes, must return, never panic.

use std::io::Cursor;

use crate::model::Metadata;
use crate::providers::{azure, cdrom, ec2, equinix, gcp, mmds, scaleway};

/// The userdata tree planner and hostname validation.
pub fn userdata(data: &[u8]) {
    if let Ok(plan) = crate::tree::plan(data) {
        for node in plan.nodes {
            let _ = format!("{node:?}");
        }
    }
    let _ = crate::model::validate_hostname(&String::from_utf8_lossy(data));
    let _ = crate::tree::parse_perm(&String::from_utf8_lossy(data));
}

/// Every metadata reply parser and the label sniffer (the disk readers have their own targets, whose
/// inputs are whole images).
pub fn replies(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = scaleway::parse_http_response(data);
    let _ = scaleway::conf_keys(&scaleway::parse_conf(&text));
    let _ = azure::parse_goal_state(&text);
    let _ = azure::parse_instance(data);
    let _ = mmds::parse_document(data);
    let _ = equinix::parse_document(data);
    let _ = ec2::parse_key_array(data);
    let _ = gcp::parse_ssh_keys(&text);
    let mut meta = Metadata::new("fuzz");
    cdrom::parse_nocloud_meta(&text, &mut meta);
    let _ = cdrom::parse_configdrive_meta(data, &mut meta);
    let _ = crate::label::detect(data);
    let _ = crate::providers::vmware::decode(&text, "gzip+base64");
}

/// The paths the disk sources read, top level and nested.
const DISK_PATHS: [&str; 3] = ["user-data", "meta-data", "openstack/latest/meta_data.json"];

/// The ISO9660 reader on a whole image.
pub fn iso9660(data: &[u8]) {
    let _ = crate::label::detect(data);
    for path in DISK_PATHS {
        let _ = crate::iso9660::read_file(&mut Cursor::new(data), path, 1 << 20);
    }
}

/// The FAT reader (allocation-table loop check, read budget, `fatfs`) on a whole image.
pub fn fat(data: &[u8]) {
    let _ = crate::label::detect(data);
    let _ = crate::fat_chains::check(&mut Cursor::new(data));
    for path in DISK_PATHS {
        let _ = crate::disk::fat_read_file(Cursor::new(data), path, 1 << 20);
    }
}
