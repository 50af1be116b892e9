#!/usr/bin/env python3
"""PyTorch reference of the SSPA model of ../shared/docs/SSPA-SPEC.md (issue 4, sections 3 and 6). Plain torch.

  python3 scripts/sspa_reference.py --write-fixtures [--perturb 0.05]  # Tests/SSPATests/Fixtures/*.safetensors
  python3 scripts/sspa_reference.py --gradcheck [--params all]         # autograd.gradcheck, float64, tiny config
  python3 scripts/sspa_reference.py --bench [--iters 3] [--threads 1,2] [--classes 20,80]

--bench: d=512, M=196, B=32, C=20 (VOC names) and 80 (COCO names), a random ViT-B/16-size text tower (512 wide,
12 layers, 8 heads, quick_gelu, built at runtime, never saved); one training step = text features for U and G,
forward, backward, grad clipping, AdamW update, all float32; one process per (C, threads) so peak RSS is its own;
prints JSON lines with the median step time of --iters steps after one warm-up step.
The text loop is checked against HF CLIPModel.get_text_features (plain ids, and U = G = the "a photo of a"
embeddings vs the ids of "a photo of a {name}."), max abs diff < 1e-6, at every fixture/gradcheck run.
Parity tolerance: compare with |a-b| <= 1e-4*max|ref| + 1e-6. A float32 torch replay of the fixtures matches them
within 1e-4 x max|tensor| (worst 7.7e-5, grad.qsm.gamma of max); the Swift model's worst is grad.qsm.gamma of
no-gdma, 3.9e-7 on 6.9e-4 (a sum of 240 terms whose absolute values add up to 4.1), inside the 1e-6 floor.

Fixtures: tiny CLIP Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu (text width D=16, projection 16), so
d = projection_dim = 16 (issue 4 says d = 32, but d must equal the CLIP projection width); M=9, C=5, B=3.
Computed in float64 from float32-rounded parameters/inputs (CLIP weights are float32 in the checkpoint), saved float32.
File keys: every trainable tensor under its own name; `grad.<name>` = dL/d<name>; `input.x0` [B,d], `input.X`
[B,M,d], `input.y` [B,C] (float32 in {1,0,-1}), `input.T_ka` [C,d]; `out.s_G`, `out.s_R`, `out.p` [B,C],
`out.loss` [1], `out.g_t` [B,C], `out.g_x` [B,M], `out.omega` [B,M,C]; intermediates `inter.T_cp`, `inter.T_g`
[C,d], `inter.T_ca`, `inter.T_uf`, `inter.T_fn` [B,C,d], `inter.X_fn` [B,M,d], `inter.S` [B,M,C].
Metadata key "sspa" = JSON (config, switches, display names, token ids, sequence layout, parameter list).

Trainable tensors (a switch removes the ones it makes unused; scalars are stored with shape [1]):
  prompt.cap_context [4,D] U, prompt.global_context [4,D] G   init: token embeddings of "a photo of a"
  dsf.W_f [d,d] identity, applied row-wise  T_cp @ W_f
  qsm.layer{1,2}.W_{r,i,j,k} [d,d] N(0, (sqrt(2/(d+d))/2)^2), stored [out,in], applied as in the spec: W v = v @ W.T
  qsm.W_o [4d,d] Glorot normal std sqrt(2/(4d+d)) (spec gives no init; zero would freeze W_o and gamma at 0 forever)
  qsm.gamma [1] 0;  parts are concatenated in the order r,i,j,k:  [o_r;o_i;o_j;o_k] @ W_o
  gdma.{v2s,s2v}.{Wq,Wk,Wv} [d,d] I + N(0,0.01^2), .Wo [d,d] 0, .w_gate [2d] 0 (first d: query-side token, last d:
      Z), .beta [1] -2; all applied row-wise (x @ W)
  agg.log_tau [1] log 0.2 (soft aggregator only, absent with sharp/max/mean)
  global.log_kappa, region.log_kappa [1] log 20;  global.bias, region.bias [1] -5
--perturb s adds seeded N(0,s^2) noise to every trainable tensor after init, so no gradient is trivially zero.

Choices the spec leaves open (the Swift side must make the same ones):
  * Text sequence: ids [49406] + 4 context slots + tokens(name) + [id of "."] + [49407], padded with 49407 to the
    longest; context vectors replace the token embeddings at positions 1..4 and get position embeddings 1..4 added;
    pooling at index 4 + len(name tokens) + 2 (the first EOT after the context), from lengths, not from ids.
    Causal mask only (no padding mask: padding is after the pooled token). E_t = text_projection(pooled), NOT
    normalised: T_cp and T_g are raw projected features.
  * Feature scale (spec revision, issue 11): x0 and every region of X are L2-normalised where they enter the model
    (x0 := norm(x0), X := norm(X)), so scaling the cached features by any positive factor changes no output.
  * norm(v) = v / max(|v|,1e-6); cos(a,b) = norm(a).norm(b) (also for S, although X_fn and T_fn are unit already).
  * GELU in QSM is exact (erf) GELU; quaternion layers have no bias; GELU is not applied after layer 2.
  * GDMA: both directions read T_uf and X (not each other's output). Softmax over regions (v2s) / labels (s2v).
  * ASL (spec revision): the focusing weights (1-p)^g+ and p_m^g- are constants in the backward pass (computed
    under no_grad, as in the ASL authors' code); a weight whose base is 0 is 0 (g = 0 gives weight 1: the log
    term is 0 there anyway); clamp(p) and clamp(1-p_m) to [1e-8,1] before log; per image the sum over its known
    labels, the batch loss the mean over the images with at least one known label.
  * max aggregator: omega = one-hot of the first argmax; mean: omega = 1/M. sharp: tau_a = 0.05 not trainable
    (only with aggregator soft). The soft tau is exp(agg.log_tau), a division S / tau inside the softmax over m.
  * no-global: no global branch at all; L = lambda*ASL(s_R), p = sigmoid(s_R); s_G is not written.
  * no-cap: T_ca = 0 and U, W_f are dropped. no-kap: t_ka = 0 in QSM and readout. no-qsm / no-gdma drop their params.
  * Training step (spec revision): AdamW with weight decay on exactly WEIGHT_DECAYED (W_f, the quaternion weights of
    both layers, W_o, the GDMA projections; the same list as Swift's SSPA.Config.weightDecayed), clip grad norm at
    10, then global.log_kappa and region.log_kappa clamped at ln(kappa_max) = ln 100 (as OpenCLIP clamps its
    logit scale). Fixture keys `step.after.<name>`: one such step from the fixture's parameters and its
    `grad.<name>` values (float32), at the lr and weight decay recorded in the metadata ("step"), except that
    global.log_kappa (region.log_kappa under no-global) starts at ln 150, stored as `step.before.<name>`, so the
    clamp acts.
"""
import argparse, json, math, os, resource, statistics, subprocess, sys, time
from dataclasses import dataclass, asdict
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CKPT = os.path.join(ROOT, "Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu")
OUT = os.path.join(ROOT, "Tests/SSPATests/Fixtures")
SOT, EOT = 49406, 49407

@dataclass
class Cfg:
    no_kap: bool = False; no_cap: bool = False; no_qsm: bool = False; no_gdma: bool = False
    aggregator: str = "soft"; sharp: bool = False; no_global: bool = False
    n_ctx: int = 4; tau_init: float = 0.2; sharp_tau: float = 0.05; kappa_init: float = 20.0; bias_init: float = -5.0
    beta_init: float = -2.0; qkv_noise: float = 0.01; gamma_pos: float = 0.0; gamma_neg: float = 2.0
    margin: float = 0.05; lam: float = 1.0; kappa_max: float = 100.0

# The weight matrices that get AdamW's weight decay (SSPA-SPEC.md, training defaults): one explicit list, the same
# as Swift's SSPA.Config.weightDecayed (the fixtures record it and the Swift parity test compares).
WEIGHT_DECAYED = (["dsf.W_f"] + [f"qsm.layer{l}.W_{c}" for l in (1, 2) for c in "rijk"] + ["qsm.W_o"]
                  + [f"gdma.{dr}.{w}" for dr in ("v2s", "s2v") for w in ("Wq", "Wk", "Wv", "Wo")])
LOG_KAPPAS = ("global.log_kappa", "region.log_kappa")

def norm(v): return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-6)
def cos(a, b): return norm(a) @ norm(b).transpose(-1, -2)

class TextTower:
    """Frozen CLIP text tower fed with embeddings: HF submodules, our own loop (CLIPTextModel has no inputs_embeds)."""
    def __init__(self, text_model, text_projection, tokenizer, names):
        self.tm, self.proj = text_model, text_projection
        for p in list(text_model.parameters()) + list(text_projection.parameters()): p.requires_grad_(False)
        self.name_ids = [tokenizer(n, add_special_tokens=False)["input_ids"] for n in names]
        self.dot = tokenizer(".", add_special_tokens=False)["input_ids"]
        self.ctx_ids = tokenizer("a photo of a", add_special_tokens=False)["input_ids"]

    def ctx_init(self):
        return self.tm.embeddings.token_embedding.weight[torch.tensor(self.ctx_ids)].detach().clone()

    def layout(self, n_ctx):  # ids with -1 at context slots, padded with EOT; pooling index per label
        seqs = [[SOT] + [-1] * n_ctx + n + self.dot + [EOT] for n in self.name_ids]
        L = max(len(s) for s in seqs)
        return [s + [EOT] * (L - len(s)) for s in seqs], [len(s) - 1 for s in seqs]

    def encode_hidden(self, h, pool):  # h [N,L,D] token+context embeddings (no positions yet)
        L = h.shape[1]
        h = h + self.tm.embeddings.position_embedding.weight[:L]
        mask = torch.full((L, L), float("-inf"), dtype=h.dtype).triu(1)
        for layer in self.tm.encoder.layers:
            a, r = layer.self_attn, h
            x = layer.layer_norm1(h)
            N, H = x.shape[0], a.num_heads
            q, k, v = (p(x).view(N, L, H, -1).transpose(1, 2) for p in (a.q_proj, a.k_proj, a.v_proj))
            w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask, dim=-1)
            h = r + a.out_proj((w @ v).transpose(1, 2).reshape(N, L, -1))
            h = h + layer.mlp.fc2(layer.mlp.activation_fn(layer.mlp.fc1(layer.layer_norm2(h))))
        h = self.tm.final_layer_norm(h)
        return self.proj(h[torch.arange(h.shape[0]), torch.tensor(pool)])

    def __call__(self, ctx):  # ctx [n_ctx,D] -> [C,d]
        seqs, pool = self.layout(ctx.shape[0])
        ids = torch.tensor(seqs).clamp_min(0)
        tok = self.tm.embeddings.token_embedding(ids)
        n = ctx.shape[0]
        h = torch.cat([tok[:, :1], ctx.to(tok.dtype).expand(len(seqs), -1, -1), tok[:, 1 + n:]], dim=1)
        return self.encode_hidden(h, pool)

    def encode_ids(self, ids):  # plain ids (for the check against get_text_features)
        pool = [row.index(EOT) for row in ids.tolist()]
        return self.encode_hidden(self.tm.embeddings.token_embedding(ids), pool)

def init_params(cfg, d, ctx0, gen, perturb=0.0):
    dt, P = torch.float64, {}
    rn = lambda *s: torch.randn(*s, generator=gen, dtype=dt)
    sc = lambda v: torch.tensor([v], dtype=dt)
    eye = torch.eye(d, dtype=dt)
    if not cfg.no_cap: P["prompt.cap_context"] = ctx0.clone().to(dt); P["dsf.W_f"] = eye.clone()
    if not cfg.no_global: P["prompt.global_context"] = ctx0.clone().to(dt)
    if not cfg.no_qsm:
        for l in (1, 2):
            for part in "rijk": P[f"qsm.layer{l}.W_{part}"] = rn(d, d) * (math.sqrt(2 / (d + d)) / 2)
        P["qsm.W_o"] = rn(4 * d, d) * math.sqrt(2 / (4 * d + d)); P["qsm.gamma"] = sc(0.0)
    if not cfg.no_gdma:
        for dr in ("v2s", "s2v"):
            for w in ("Wq", "Wk", "Wv"): P[f"gdma.{dr}.{w}"] = eye + cfg.qkv_noise * rn(d, d)
            P[f"gdma.{dr}.Wo"] = torch.zeros(d, d, dtype=dt); P[f"gdma.{dr}.w_gate"] = torch.zeros(2 * d, dtype=dt)
            P[f"gdma.{dr}.beta"] = sc(cfg.beta_init)
    if cfg.aggregator == "soft" and not cfg.sharp: P["agg.log_tau"] = sc(math.log(cfg.tau_init))
    for br in (["region"] if cfg.no_global else ["global", "region"]):
        P[f"{br}.log_kappa"] = sc(math.log(cfg.kappa_init)); P[f"{br}.bias"] = sc(cfg.bias_init)
    for k in P:
        if perturb: P[k] = P[k] + perturb * rn(*P[k].shape)
    return P

def qlinear(q, P, pre):  # Hamilton product W (x) q, exactly the spec's four equations; W v = v @ W.T
    r, i, j, k = q
    Wr, Wi, Wj, Wk = (P[f"{pre}.W_{c}"] for c in "rijk")
    f = lambda W, v: v @ W.T
    return (f(Wr, r) - f(Wi, i) - f(Wj, j) - f(Wk, k),
            f(Wr, i) + f(Wi, r) + f(Wj, k) - f(Wk, j),
            f(Wr, j) - f(Wi, k) + f(Wj, r) + f(Wk, i),
            f(Wr, k) + f(Wi, j) - f(Wj, i) + f(Wk, r))

def gdma(P, pre, Qs, KV, d):  # Qs [B,n,d] attends to KV [B,m,d]; returns norm(Qs + g*(Z Wo)), g [B,n]
    a = torch.softmax((Qs @ P[pre + ".Wq"]) @ (KV @ P[pre + ".Wk"]).transpose(1, 2) / math.sqrt(d), dim=-1)
    Z = a @ (KV @ P[pre + ".Wv"])
    g = torch.sigmoid(torch.cat([Qs, Z], -1) @ P[pre + ".w_gate"] + P[pre + ".beta"])
    return norm(Qs + g.unsqueeze(-1) * (Z @ P[pre + ".Wo"])), g

def focusing(base, gamma):  # base^gamma, a constant of the backward pass; 0 where the base is 0 (never NaN)
    with torch.no_grad():
        if not gamma: return torch.ones_like(base)
        return torch.where(base > 0, base.clamp_min(0) ** gamma, torch.zeros_like(base))

def asl(s, y, cfg, weights=None):
    """ASL per image (sum over its known labels), mean over the images with a known label. `weights` (wp, wn)
    replaces the focusing weights (the finite-difference check freezes them at the point it differentiates)."""
    p = torch.sigmoid(s)
    pos, neg = (y == 1).to(s.dtype), (y == 0).to(s.dtype)
    pm = (p - cfg.margin).clamp_min(0)
    wp, wn = weights if weights is not None else (focusing(1 - p, cfg.gamma_pos), focusing(pm, cfg.gamma_neg))
    l = pos * wp * p.clamp(1e-8, 1).log() + neg * wn * (1 - pm).clamp(1e-8, 1).log()
    images = (y >= 0).any(-1).to(s.dtype)
    return -(l.sum(-1) * images).sum() / images.sum().clamp_min(1), (wp, wn)

def forward(P, cfg, tower, x0, X, y, Tka, asl_weights=None):
    B, M, d = X.shape
    x0, X = norm(x0), norm(X)  # feature scale: unit features where they enter the model
    aw = asl_weights or {}
    assert not (cfg.sharp and cfg.aggregator != "soft"), "sharp is the soft aggregator with a fixed tau"
    C, o = Tka.shape[0], {}
    if not cfg.no_cap:
        o["T_cp"] = Tcp = tower(P["prompt.cap_context"])
        A = torch.softmax(((Tcp @ P["dsf.W_f"]) @ X.transpose(1, 2)) / math.sqrt(d), dim=-1)  # [B,C,M]
        Tca = norm(Tcp + A @ X)
    else:
        Tca = X.new_zeros(B, C, d)
    tka = (X.new_zeros(C, d) if cfg.no_kap else Tka).expand(B, C, d)
    if cfg.no_qsm:
        Tuf = norm(tka + Tca)
    else:
        q = (X.new_zeros(B, C, d), tka, Tca, x0.unsqueeze(1).expand(B, C, d))
        q = tuple(F.gelu(t) for t in qlinear(q, P, "qsm.layer1"))
        q = qlinear(q, P, "qsm.layer2")
        Tuf = norm(tka + Tca + P["qsm.gamma"] * (torch.cat(q, -1) @ P["qsm.W_o"]))
    if cfg.no_gdma:
        Tfn, Xfn = Tuf, X
    else:
        Tfn, o["g_t"] = gdma(P, "gdma.v2s", Tuf, X, d)
        Xfn, o["g_x"] = gdma(P, "gdma.s2v", X, Tuf, d)
    S = cos(Xfn, Tfn)  # [B,M,C]
    if cfg.aggregator == "soft":
        tau = cfg.sharp_tau if cfg.sharp else P["agg.log_tau"].exp()
        w = torch.softmax(S / tau, dim=1)
    elif cfg.aggregator == "max":
        w = F.one_hot(S.argmax(dim=1), M).transpose(1, 2).to(S.dtype)
    else:
        w = torch.full_like(S, 1.0 / M)
    o["s_R"] = sR = P["region.log_kappa"].exp() * (w * S).sum(1) + P["region.bias"]
    lR, wR = asl(sR, y, cfg, aw.get("R"))
    loss, p, o["asl_weights"] = cfg.lam * lR, torch.sigmoid(sR), {"R": wR}
    if not cfg.no_global:
        o["T_g"] = Tg = tower(P["prompt.global_context"])
        o["s_G"] = sG = P["global.log_kappa"].exp() * cos(x0, Tg) + P["global.bias"]
        lG, o["asl_weights"]["G"] = asl(sG, y, cfg, aw.get("G"))
        loss, p = loss + lG, (torch.sigmoid(sG) + p) / 2
    o.update(T_ca=Tca, T_uf=Tuf, T_fn=Tfn, X_fn=Xfn, S=S, omega=w, loss=loss.reshape(1), p=p)
    return o

def train_step(P, grads, lr, wd, cfg, max_norm=10.0):
    """One training step as Swift's SSPA.Trainer takes it: clip, AdamW (decay on WEIGHT_DECAYED only), clamp."""
    P = {k: v.detach().clone().requires_grad_() for k, v in P.items()}
    for k, g in grads.items(): P[k].grad = g.detach().clone()
    torch.nn.utils.clip_grad_norm_(list(P.values()), max_norm)
    decay = [v for k, v in P.items() if k in WEIGHT_DECAYED]
    rest = [v for k, v in P.items() if k not in WEIGHT_DECAYED]
    torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}], lr=lr,
                      betas=(0.9, 0.999), eps=1e-8).step()
    with torch.no_grad():
        for k in LOG_KAPPAS:
            if k in P: P[k].clamp_(max=math.log(cfg.kappa_max))
    return {k: v.detach() for k, v in P.items()}

STEP = dict(lr=1e-2, weight_decay=0.5, max_grad_norm=10.0, log_kappa_before=math.log(150.0))

ABLATIONS = {"full": {}, "no-kap": dict(no_kap=True), "no-cap": dict(no_cap=True), "no-qsm": dict(no_qsm=True),
             "no-gdma": dict(no_gdma=True), "max": dict(aggregator="max"), "mean": dict(aggregator="mean"),
             "sharp": dict(sharp=True), "no-global": dict(no_global=True)}
NAMES = ["dog", "traffic light", "dining table", "cat", "potted plant"]

def check_tower(m, tower, tok):  # our own text loop vs HF get_text_features: plain ids, and the context path
    ids = tok(["a photo of a dog.", "traffic light", "potted plant on a dining table"], padding=True, return_tensors="pt")
    full = tok([f"a photo of a {n}." for n in NAMES], padding=True, return_tensors="pt")
    with torch.no_grad():
        e1 = (m.get_text_features(**ids).pooler_output - tower.encode_ids(ids["input_ids"])).abs().max().item()
        e2 = (m.get_text_features(**full).pooler_output - tower(tower.ctx_init())).abs().max().item()
    assert max(e1, e2) < 1e-6, f"text tower mismatch {e1} {e2}"
    return max(e1, e2)

def tiny_setup(dtype=torch.float64):
    from transformers import CLIPModel, CLIPTokenizer
    m = CLIPModel.from_pretrained(CKPT).eval()
    tok = CLIPTokenizer(os.path.join(CKPT, "vocab.json"), os.path.join(CKPT, "merges.txt"))
    e32 = check_tower(m, TextTower(m.text_model, m.text_projection, tok, NAMES), tok)
    m = m.to(dtype)
    tower = TextTower(m.text_model, m.text_projection, tok, NAMES)
    return tower, m.config.projection_dim, (e32, check_tower(m, tower, tok))

def tiny_inputs(d, B=3, M=9, C=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    r32 = lambda t: t.float().double()  # round to float32 so the saved values are exactly the computed ones
    x0, X = r32(torch.randn(B, d, generator=g)), r32(torch.randn(B, M, d, generator=g))
    y = torch.tensor([[1, 0, -1, 0, 1], [0, -1, 1, 1, 0], [-1, 1, 0, 0, -1]], dtype=torch.float64)[:B, :C]
    Tka = r32(norm(torch.randn(C, d, generator=g, dtype=torch.float64)))
    return x0, X, y, Tka

def write_fixtures(perturb, seed):
    tower, d, err = tiny_setup()
    print("text tower vs get_text_features, max abs diff: float32 %.2e, float64 %.2e" % err)
    x0, X, y, Tka = tiny_inputs(d)
    os.makedirs(OUT, exist_ok=True)
    seqs, pool = tower.layout(4)
    for name, sw in ABLATIONS.items():
        cfg = Cfg(**sw)
        P = {k: v.float().double().requires_grad_() for k, v in
             init_params(cfg, d, tower.ctx_init(), torch.Generator().manual_seed(seed), perturb).items()}
        o = forward(P, cfg, tower, x0, X, y, Tka)
        grads = torch.autograd.grad(o["loss"].sum(), list(P.values()))
        t = {k: v.detach() for k, v in P.items()}
        t.update({f"grad.{k}": g for k, g in zip(P, grads)})
        t.update({"input.x0": x0, "input.X": X, "input.y": y, "input.T_ka": Tka})
        before = {k: v.detach().float().double() for k, v in P.items()}
        over = "global.log_kappa" if "global.log_kappa" in before else "region.log_kappa"  # above ln 100: clamped
        before[over] = torch.tensor([STEP["log_kappa_before"]]).float().double()
        after = train_step(before, {k: g.float().double() for k, g in zip(P, grads)}, STEP["lr"], STEP["weight_decay"],
                           cfg, STEP["max_grad_norm"])
        t[f"step.before.{over}"] = before[over]  # every other tensor starts the step at its fixture value
        t.update({f"step.after.{k}": v for k, v in after.items()})
        o.pop("asl_weights")
        for k, v in o.items():
            t[("out." if k in ("s_G", "s_R", "loss", "g_t", "g_x", "omega", "p") else "inter.") + k] = v.detach()
        t = {k: v.float().contiguous() for k, v in t.items()}
        meta = dict(config=asdict(cfg), ablation=name, d=d, M=X.shape[1], C=Tka.shape[0], B=x0.shape[0],
                    perturb=perturb, seed=seed, display_names=NAMES, name_token_ids=tower.name_ids,
                    dot_token_id=tower.dot, context_init_text="a photo of a", context_init_ids=tower.ctx_ids,
                    sequences=seqs, pool_index=pool, clip_checkpoint="Tests/CLIPTests/Fixtures/checkpoints/tiny-quickgelu",
                    params={k: list(v.shape) for k, v in P.items()}, dtype="computed float64, saved float32",
                    weight_decayed=[k for k in WEIGHT_DECAYED if k in P], step=STEP,
                    torch=torch.__version__)
        fn = os.path.join(OUT, "sspa_reference.safetensors" if name == "full" else f"sspa_reference_{name}.safetensors")
        save_file(t, fn, metadata={"sspa": json.dumps(meta)})
        print(f"{os.path.relpath(fn, ROOT)}  {os.path.getsize(fn)} B  loss {o['loss'].item():.6f}")

def gradcheck(names, perturb, seed):  # names == ["all"]: every parameter, every ablation, fast (random-direction) mode
    tower, d, _ = tiny_setup()
    x0, X, y, Tka = tiny_inputs(d)
    fast = names == ["all"]
    for sw in (ABLATIONS if fast else ("full", "no-qsm", "sharp", "no-global")):
        cfg = Cfg(**ABLATIONS[sw])
        P = init_params(cfg, d, tower.ctx_init(), torch.Generator().manual_seed(seed), perturb)
        keys = [k for k in (P if fast else names) if k in P]
        # The ASL focusing weights are constants of the backward pass: check the gradient of the loss with them
        # frozen at P (same value and same gradient at P as the training loss).
        frozen = forward(P, cfg, tower, x0, X, y, Tka)["asl_weights"]
        def f(*vals):
            o = forward({**P, **dict(zip(keys, vals))}, cfg, tower, x0, X, y, Tka, frozen)
            return o["loss"], o["s_R"], o["p"]
        ok = torch.autograd.gradcheck(f, [P[k].clone().requires_grad_() for k in keys], eps=1e-6, atol=1e-7, rtol=1e-5,
                                      fast_mode=fast)
        print(f"gradcheck {sw}{' (fast mode)' if fast else ''}: {ok}  ({len(keys)} tensors: {', '.join(keys)})")

def bench_one(C, T, iters):
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer
    torch.set_num_threads(T); torch.manual_seed(0)
    tc = CLIPTextConfig(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                        projection_dim=512, hidden_act="quick_gelu", bos_token_id=SOT, eos_token_id=EOT)
    m = CLIPTextModelWithProjection(tc).eval()  # random ViT-B/16-size text tower, never saved
    tok = CLIPTokenizer(os.path.join(CKPT, "vocab.json"), os.path.join(CKPT, "merges.txt"))
    sets = json.load(open("/work/shared/data/label-sets.json"))
    names = sets["voc2007" if C == 20 else "coco2014"]["classes"][:C]
    tower = TextTower(m.text_model, m.text_projection, tok, names)
    B, M, d, cfg = 32, 196, 512, Cfg()
    P = {k: v.float().requires_grad_() for k, v in
         init_params(cfg, d, tower.ctx_init(), torch.Generator().manual_seed(0), 0.0).items()}
    x0, X = torch.randn(B, d), torch.randn(B, M, d)
    y, Tka = torch.randint(-1, 2, (B, C)).float(), norm(torch.randn(C, d))
    decay = [v for k, v in P.items() if k in WEIGHT_DECAYED]
    rest = [v for k, v in P.items() if k not in WEIGHT_DECAYED]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": rest, "weight_decay": 0.0}], lr=5e-4)
    def step():
        opt.zero_grad(set_to_none=True)
        forward(P, cfg, tower, x0, X, y, Tka)["loss"].sum().backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 10.0)
        opt.step()
        with torch.no_grad():
            for k in LOG_KAPPAS: P[k].clamp_(max=math.log(cfg.kappa_max))
    rss_setup = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
    step()  # warm-up
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(dict(C=C, threads=T, B=B, M=M, d=d, iters=iters, median_s=statistics.median(ts),
                          times_s=[round(t, 4) for t in ts], peak_rss_mb=round(rss, 1), rss_after_setup_mb=round(rss_setup, 1),
                          loadavg_1min=os.getloadavg()[0], torch=torch.__version__)))

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write-fixtures", action="store_true"); ap.add_argument("--gradcheck", action="store_true")
    ap.add_argument("--bench", action="store_true"); ap.add_argument("--bench-one", nargs=2, type=int)
    ap.add_argument("--perturb", type=float, default=0.05); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iters", type=int, default=3); ap.add_argument("--threads", default="1,2")
    ap.add_argument("--classes", default="20,80"); ap.add_argument("--params", default="")
    a = ap.parse_args()
    if a.write_fixtures: write_fixtures(a.perturb, a.seed)
    if a.gradcheck:
        gradcheck([s for s in a.params.split(",") if s] or ["prompt.cap_context", "qsm.gamma", "qsm.layer1.W_r",
                  "gdma.v2s.w_gate", "gdma.s2v.Wo", "agg.log_tau", "global.log_kappa"], a.perturb, a.seed)
    if a.bench_one: bench_one(*a.bench_one, a.iters)
    if a.bench:  # one process per (C, T) so that peak RSS is per configuration
        for C in map(int, a.classes.split(",")):
            for T in map(int, a.threads.split(",")):
                subprocess.run([sys.executable, __file__, "--bench-one", str(C), str(T), "--iters", str(a.iters)], check=True)
