# Copyright (c) kdm contributors. Licensed under the Apache License 2.0.
"""The adm, flow and kdm teacher loaders and tools/convert.py."""
import importlib.util
import os.path as osp
from collections import OrderedDict

import pytest
import torch

from kdm.diffusion import DiscreteDenoiser, EDMPrecond, FlowDenoiser
from kdm.models.networks import ADMUNet, SongUNet
from kdm.models.teachers import TeacherLoadError
from kdm.registry import TEACHERS
from .edm_format import GENUINE_SRC, edm_snapshot_bytes, to_reference
from .test_adm_unet import guided_diffusion_shapes
from .test_edm_pickle import tiny_edm

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ADM_NET = dict(type='ADMUNet', image_size=16, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
               attention_resolutions=[2], channel_mult=[1, 2], num_head_channels=16, num_heads=4,
               use_scale_shift_norm=True, resblock_updown=True, use_new_attention_order=True, dropout=0.3)
FLOW_NET = dict(type='SongUNet', img_resolution=16, in_channels=3, out_channels=3, model_channels=16,
                channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8], dropout=0.15)


def _convert_tool():
    spec = importlib.util.spec_from_file_location('kdm_convert_tool', osp.join(ROOT, 'tools', 'convert.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def random_adm_state_dict(seed=0):
    torch.manual_seed(seed)
    shapes = guided_diffusion_shapes(32, 1, (1, 2), {2}, 16)
    return OrderedDict((k, torch.randn(s) * 0.05) for k, s in shapes.items())


# ---------------------------------------------------------------------------------------------------------- adm
def test_adm_loader_strict_with_prefix_and_diffusion(tmp_path):
    sd = random_adm_state_dict()
    path = tmp_path / 'ADM_cifar10_baseline.pt'
    torch.save(OrderedDict(('module.' + k, v) for k, v in sd.items()), path)  # a DataParallel-saved file
    teacher = TEACHERS.build(dict(type='adm', path=str(path), network=ADM_NET))
    assert isinstance(teacher, DiscreteDenoiser) and isinstance(teacher.net, ADMUNet)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(teacher.net.state_dict()[k], v) for k, v in sd.items())
    assert teacher.diffusion.num_timesteps == 1000
    x = torch.randn(2, 3, 16, 16)
    assert torch.isfinite(teacher(x, torch.tensor([0.1, 10.0]))).all()


def test_adm_loader_errors(tmp_path):
    sd = random_adm_state_dict()
    wrong = dict(ADM_NET, model_channels=64)
    path = tmp_path / 'teacher.pt'
    torch.save(sd, path)
    with pytest.raises(TeacherLoadError, match=r"first mismatching key 'time_embed\.0\.weight': checkpoint shape "
                       r'\(128, 32\), network shape \(256, 64\)'):
        TEACHERS.build(dict(type='adm', path=str(path), network=wrong))
    with pytest.raises(TeacherLoadError, match='learn_sigma'):
        TEACHERS.build(dict(type='adm', path=str(path), network=dict(ADM_NET, out_channels=3)))
    data = path.read_bytes()
    cut = tmp_path / 'cut.pt'
    cut.write_bytes(data[:len(data) // 3])
    with pytest.raises(TeacherLoadError, match='truncated'):
        TEACHERS.build(dict(type='adm', path=str(cut), network=ADM_NET))
    text = tmp_path / 'notes.pt'
    text.write_text('not a checkpoint')
    with pytest.raises(TeacherLoadError, match='could not be read'):
        TEACHERS.build(dict(type='adm', path=str(text), network=ADM_NET))
    with pytest.raises(FileNotFoundError, match=r'(?s)DDPM_IP_celeba64\.pt.*forever208/DDPM-IP'):
        TEACHERS.build(dict(type='adm', path=str(tmp_path / 'DDPM_IP_celeba64.pt'), network=ADM_NET))


# ---------------------------------------------------------------------------------------------------------- flow
def ncsnpp_layout(net: SongUNet) -> 'OrderedDict[str, torch.Tensor]':
    """score_sde NCSNpp keys (DDPM++ settings) for the weights of ``net``: embedding Linear x2, input conv, per
    encoder block a residual module (+ an attention module), the middle Res/Attn/Res, the decoder blocks with one
    attention module after the last block of a level and the up-block, output GroupNorm and conv."""
    sd, out, i = net.state_dict(), OrderedDict(), 0

    def put(names):
        nonlocal i
        for src, dst in names:
            out[f'all_modules.{i}.{src}'] = sd[dst]
        i += 1

    put([('weight', 'map_layer0.weight'), ('bias', 'map_layer0.bias')])
    put([('weight', 'map_layer1.weight'), ('bias', 'map_layer1.bias')])
    for part in ('enc', 'dec'):
        for name, block in getattr(net, part).items():
            p = f'{part}.{name}.'
            if hasattr(block, 'conv0'):
                res = [('GroupNorm_0', 'norm0'), ('Conv_0', 'conv0'), ('Dense_0', 'affine'), ('GroupNorm_1', 'norm1'),
                       ('Conv_1', 'conv1')] + ([('Conv_2', 'skip')] if block.skip is not None else [])
                put([(f'{a}.{w}', f'{p}{b}.{w}') for a, b in res for w in ('weight', 'bias')])
                if block.num_heads:
                    c = block.out_channels
                    qkv_w = sd[p + 'qkv.weight'].reshape(c, 3, c)  # rows (channel, q/k/v) interleaved
                    qkv_b = sd[p + 'qkv.bias'].reshape(c, 3)
                    for j in range(3):
                        out[f'all_modules.{i}.NIN_{j}.W'] = qkv_w[:, j].t()
                        out[f'all_modules.{i}.NIN_{j}.b'] = qkv_b[:, j]
                    out[f'all_modules.{i}.NIN_3.W'] = sd[p + 'proj.weight'][:, :, 0, 0].t()
                    out[f'all_modules.{i}.NIN_3.b'] = sd[p + 'proj.bias']
                    out[f'all_modules.{i}.GroupNorm_0.weight'] = sd[p + 'norm2.weight']
                    out[f'all_modules.{i}.GroupNorm_0.bias'] = sd[p + 'norm2.bias']
                    i += 1
            else:
                put([('weight', p + 'weight'), ('bias', p + 'bias')])
    return out


def random_songunet(seed, **kw):
    torch.manual_seed(seed)
    net = SongUNet(**{k: v for k, v in dict(FLOW_NET, **kw).items() if k != 'type'}).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
    return net


def test_flow_loader_slimflow_layout_with_ema(tmp_path):
    raw, ema = random_songunet(0), random_songunet(1)
    model = OrderedDict([('module.sigmas', torch.linspace(0.01, 50, 1000))])
    model.update(('module.' + k, v) for k, v in ncsnpp_layout(raw).items())
    shadow = list(ncsnpp_layout(ema).values())  # parameter order of the NCSNpp
    path = tmp_path / 'checkpoint_16.pth'
    torch.save(dict(model=model, ema=dict(decay=0.999999, num_updates=10, shadow_params=shadow),
                    optimizer=dict(state={}, param_groups=[]), step=10), path)
    for use_ema, ref in ((True, ema), (False, raw)):
        teacher = TEACHERS.build(dict(type='flow', path=str(path), network=FLOW_NET, ema=use_ema))
        assert isinstance(teacher, FlowDenoiser) and teacher.convention == 'rf'
        assert list(teacher.net.state_dict()) == list(ref.state_dict())
        x, t = torch.randn(2, 3, 16, 16), torch.tensor([0.2, 0.9])
        with torch.no_grad():
            assert torch.equal(teacher.velocity(x, t), ref(x, 999 * t))
    bad = dict(model=model, ema=dict(decay=0.9, num_updates=1, shadow_params=shadow[:-1]))
    torch.save(bad, tmp_path / 'bad.pth')
    with pytest.raises(TeacherLoadError, match='shadow parameters'):
        TEACHERS.build(dict(type='flow', path=str(tmp_path / 'bad.pth'), network=FLOW_NET))
    with pytest.raises(TeacherLoadError, match='architectures differ'):  # no attention in the network
        TEACHERS.build(dict(type='flow', path=str(path), network=dict(FLOW_NET, attn_resolutions=[])))


def test_flow_loader_cud_layouts(tmp_path):
    net = random_songunet(2, prior_shakedrop=True, phi=0.75)
    cfg = dict(FLOW_NET, prior_shakedrop=True, phi=0.75)
    torch.save(net.state_dict(), tmp_path / 'flow_model_500000_ema.pth')
    torch.save(OrderedDict(('module.' + k, v) for k, v in net.state_dict().items()),
               tmp_path / 'flow_model_distilled_2.pth')
    torch.save(dict(model_state_dict=[net.state_dict()], step=3), tmp_path / 'training_state_5.pth')
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([0.3, 1.0])
    for name in ('flow_model_500000_ema.pth', 'flow_model_distilled_2.pth', 'training_state_5.pth'):
        teacher = TEACHERS.build(dict(type='flow', path=str(tmp_path / name), network=cfg, convention='cud'))
        with torch.no_grad():
            assert torch.equal(teacher.velocity(x, t), net(x, t))  # CUD feeds raw t
            # data at t = 0: D(x; sigma) = x_t - t v with x_t = x / (1 + sigma), t = sigma / (1 + sigma)
            sigma = torch.tensor([1.0, 3.0])
            s = (1 / (1 + sigma)).reshape(-1, 1, 1, 1)
            tt = (1 - s).reshape(-1)
            torch.testing.assert_close(teacher(x, sigma), x * s - tt.reshape(-1, 1, 1, 1) * net(x * s, tt))


# ---------------------------------------------------------------------------------------------- convert + kdm
def test_convert_and_kdm_loader_round_trip(tmp_path, capsys):
    convert = _convert_tool().convert
    # EDM pickle -> kdm checkpoint -> kdm teacher
    torch.manual_seed(0)
    net = SongUNet(img_resolution=8, in_channels=3, out_channels=3, label_dim=4, model_channels=16,
                   channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4])
    pre = EDMPrecond(net, img_resolution=8, img_channels=3, label_dim=4).eval()
    with torch.no_grad():
        for p in pre.parameters():
            p.normal_(0, 0.2)
    kw = dict(img_resolution=8, img_channels=3, label_dim=4, use_fp16=False, model_type='SongUNet', model_channels=16,
              channel_mult=[1, 2], num_blocks=1, attn_resolutions=[4])
    pkl = tmp_path / 'edm-tiny.pkl'
    pkl.write_bytes(edm_snapshot_bytes(to_reference(pre, GENUINE_SRC, kw)))
    out = tmp_path / 'edm_tiny.pth'
    summary = convert(str(pkl), str(out))
    assert summary['verify_max_abs_diff'] == 0 and summary['class_name'] == 'EDMPrecond'
    printed = capsys.readouterr().out
    assert 'EDMPrecond' in printed and f'{summary["num_params"]:,} parameters' in printed
    teacher = TEACHERS.build(dict(type='kdm', path=str(out)))
    x, sigma, cond = torch.randn(3, 3, 8, 8), torch.tensor([0.1, 1.0, 10.0]), torch.tensor([0, 1, 3])
    with torch.no_grad():
        assert torch.equal(teacher(x, sigma, cond), pre(x, sigma, cond))
    assert not any(p.requires_grad for p in teacher.parameters())

    # flow (CUD) and adm teachers through a teacher config
    flow_src = tmp_path / 'flow_model_ema.pth'
    flow_net = random_songunet(3)
    torch.save(flow_net.state_dict(), flow_src)
    cfg_file = tmp_path / 'flow_teacher.py'
    cfg_file.write_text(f'teacher = dict(type="flow", path="unused", convention="cud", network={FLOW_NET!r})\n')
    convert(str(flow_src), str(tmp_path / 'flow.pth'), str(cfg_file))
    flow_teacher = TEACHERS.build(dict(type='kdm', path=str(tmp_path / 'flow.pth')))
    assert isinstance(flow_teacher, FlowDenoiser) and flow_teacher.convention == 'cud'

    adm_src = tmp_path / 'adm.pt'
    torch.save(random_adm_state_dict(), adm_src)
    cfg_file = tmp_path / 'adm_teacher.py'
    cfg_file.write_text(f'teacher = dict(type="adm", path="unused", network={ADM_NET!r})\n')
    convert(str(adm_src), str(tmp_path / 'adm.pth'), str(cfg_file))
    adm_teacher = TEACHERS.build(dict(type='kdm', path=str(tmp_path / 'adm.pth')))
    assert isinstance(adm_teacher, DiscreteDenoiser) and adm_teacher.diffusion.num_timesteps == 1000
    direct = TEACHERS.build(dict(type='adm', path=str(adm_src), network=ADM_NET))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(adm_teacher(x, torch.tensor([0.3, 3.0])), direct(x, torch.tensor([0.3, 3.0])))


def test_kdm_loader_errors(tmp_path):
    torch.save(dict(state_dict={}, meta=dict()), tmp_path / 'nocfg.pth')
    with pytest.raises(TeacherLoadError, match='no config'):
        TEACHERS.build(dict(type='kdm', path=str(tmp_path / 'nocfg.pth')))
    torch.save(dict(weights=torch.zeros(2)), tmp_path / 'other.pth')
    with pytest.raises(TeacherLoadError, match='not a kdm checkpoint'):
        TEACHERS.build(dict(type='kdm', path=str(tmp_path / 'other.pth')))
    with pytest.raises(FileNotFoundError, match='tools/convert.py'):
        TEACHERS.build(dict(type='kdm', path=str(tmp_path / 'missing.pth')))


def test_convert_pickle_options(tmp_path):
    """``teacher.use_fp16`` reaches the converted teacher and its stored config; unknown options are named."""
    convert = _convert_tool().convert
    pre, kw = tiny_edm()
    pkl = tmp_path / 'edm-tiny.pkl'
    pkl.write_bytes(edm_snapshot_bytes(to_reference(pre, GENUINE_SRC, kw)))  # pickled use_fp16=False
    out = tmp_path / 'edm_fp16.pth'
    summary = convert(str(pkl), str(out), options={'teacher.use_fp16': True}, log=lambda *a: None)
    assert summary['model_cfg']['use_fp16'] is True and summary['verify_max_abs_diff'] == 0
    teacher = TEACHERS.build(dict(type='kdm', path=str(out)))
    assert isinstance(teacher, EDMPrecond) and teacher.use_fp16 is True
    kept = convert(str(pkl), None, log=lambda *a: None)
    assert kept['model_cfg'].get('use_fp16') is False  # without the option the pickled flag is kept
    with pytest.raises(ValueError, match=r"unknown edm_pickle option\(s\) \['kye'\]; valid: \['key'"):
        convert(str(pkl), None, options={'teacher.kye': 'ema'}, log=lambda *a: None)


def test_flow_and_kdm_loader_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'(?s)checkpoint_8\.pth.*gnobitab/RectifiedFlow'):
        TEACHERS.build(dict(type='flow', path=str(tmp_path / 'checkpoint_8.pth'), network=FLOW_NET))
    (tmp_path / 'cut.pth').write_bytes(b'PK\x03\x04 truncated')
    with pytest.raises(TeacherLoadError, match='truncated'):
        TEACHERS.build(dict(type='flow', path=str(tmp_path / 'cut.pth'), network=FLOW_NET))
    # a kdm checkpoint whose weights do not fit the stored config names the first mismatching key and shapes
    net = random_songunet(0)
    cfg_text = f'model = dict(type="FlowDenoiser", net={dict(FLOW_NET, model_channels=8)!r}, convention="cud")\n'
    sd = OrderedDict(('net.' + k, v) for k, v in net.state_dict().items())
    torch.save(dict(state_dict=sd, meta=dict(cfg=cfg_text)), tmp_path / 'wrong.pth')
    with pytest.raises(TeacherLoadError, match=r"first mismatching key 'net\.map_layer0\.weight': checkpoint shape "
                       r'\(64, 16\), network shape \(32, 8\)'):
        TEACHERS.build(dict(type='kdm', path=str(tmp_path / 'wrong.pth')))
