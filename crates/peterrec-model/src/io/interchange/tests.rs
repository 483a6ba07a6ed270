use super::*;

#[test]
fn conv_layout_round_trips_and_matches_the_formula() {
    let (c_out, c_in, k) = (3, 2, 4);
    let port: Vec<f32> = (0..c_out * c_in * k).map(|v| v as f32).collect();
    let ours = conv_from_port(&port, c_out, c_in, k);
    for o in 0..c_out {
        for i in 0..c_in {
            for j in 0..k {
                assert_eq!(
                    ours[(j * c_in + i) * c_out + o],
                    port[(o * c_in + i) * k + j]
                );
            }
        }
    }
    assert_eq!(conv_to_port(&ours, c_out, c_in, k), port);
    let m: Vec<f32> = (0..6).map(|v| v as f32).collect();
    assert_eq!(transpose(&m, 2, 3), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    assert_eq!(transpose(&transpose(&m, 2, 3), 3, 2), m);
}

#[test]
fn port_config_parses_the_fixture_form_and_keeps_other_keys() {
    let json = r#"{"vocab": 50, "channels": 8, "kernel": 3, "block_dilations": [1, 2],
        "layernorm_eps": 1e-08, "seq_len": 12, "padding_id": 0, "causal": true,
        "patches": true, "patch_placement": "parallel", "patch_activation": "gelu",
        "patch_bottleneck": 2, "ft_head": "linear [classes, C] + bias"}"#;
    let pc: PortConfig = serde_json::from_str(json).unwrap();
    assert_eq!(pc.insertion().unwrap(), Some(Insertion::Parallel));
    assert!(pc.parallel_adds_input());
    assert_eq!(pc.other["seq_len"], 12);
    let cfg = pc.backbone_config().unwrap();
    assert_eq!(cfg.layer_norm_eps, 1e-8);
    let relu = PortConfig {
        patch_activation: Some("relu".into()),
        ..pc
    };
    assert!(matches!(
        relu.insertion(),
        Err(ModelError::InvalidConfig(_))
    ));
}
