"""What a consumer is told, on every channel: pure functions, no I/O.

* :func:`consumer_view` turns the verification view into the consumer's view:
  no consignee or custodian names, no coordinates, no other scanners' details;
  the trail is places (province or city) and dates. Lot (AI 10), expiry (AI 17)
  and GTIN given with the query are checked against the ledger; a
  contradiction makes the verdict ``suspicious``.
* :func:`display_key` picks what the big verdict says (adding "already queried
  N times" and the PIN outcomes to the ledger's verdicts).
* :func:`parse_sms` reads what people type into an SMS; :func:`sms_reply`
  answers in one segment (≤ 70 UCS-2 characters), verdict first.
* :data:`TEXT`, :data:`SMS` and :data:`VOICE` hold the Simplified Chinese and English wording of every channel.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta, timezone

from ledger import gs1, pins, shortcode
from ledger.errors import Refused

LANGS = ("zh", "en")
CHINA_TIME = timezone(timedelta(hours=8))
SMS_LIMIT = 70  # one SMS segment in UCS-2
HOTLINE = "12315"  # the national consumer complaints line

# Province-level GB/T 2260 codes, and a few cities: enough to name a place
# coarsely. Anything else is shown by its province.
PLACES: dict[str, tuple[str, str]] = {
    "11": ("北京", "Beijing"), "12": ("天津", "Tianjin"), "13": ("河北", "Hebei"), "14": ("山西", "Shanxi"),
    "15": ("内蒙古", "Inner Mongolia"), "21": ("辽宁", "Liaoning"), "22": ("吉林", "Jilin"), "23": ("黑龙江", "Heilongjiang"),
    "31": ("上海", "Shanghai"), "32": ("江苏", "Jiangsu"), "33": ("浙江", "Zhejiang"), "34": ("安徽", "Anhui"),
    "35": ("福建", "Fujian"), "36": ("江西", "Jiangxi"), "37": ("山东", "Shandong"), "41": ("河南", "Henan"),
    "42": ("湖北", "Hubei"), "43": ("湖南", "Hunan"), "44": ("广东", "Guangdong"), "45": ("广西", "Guangxi"),
    "46": ("海南", "Hainan"), "50": ("重庆", "Chongqing"), "51": ("四川", "Sichuan"), "52": ("贵州", "Guizhou"),
    "53": ("云南", "Yunnan"), "54": ("西藏", "Tibet"), "61": ("陕西", "Shaanxi"), "62": ("甘肃", "Gansu"),
    "63": ("青海", "Qinghai"), "64": ("宁夏", "Ningxia"), "65": ("新疆", "Xinjiang"), "71": ("台湾", "Taiwan"),
    "81": ("香港", "Hong Kong"), "82": ("澳门", "Macao"),
    "4401": ("广东广州", "Guangzhou, Guangdong"), "4403": ("广东深圳", "Shenzhen, Guangdong"),
    "4406": ("广东佛山", "Foshan, Guangdong"), "4419": ("广东东莞", "Dongguan, Guangdong"),
    "3301": ("浙江杭州", "Hangzhou, Zhejiang"), "3302": ("浙江宁波", "Ningbo, Zhejiang"),
    "3201": ("江苏南京", "Nanjing, Jiangsu"), "3205": ("江苏苏州", "Suzhou, Jiangsu"),
    "5101": ("四川成都", "Chengdu, Sichuan"), "4201": ("湖北武汉", "Wuhan, Hubei"),
}

# Events a consumer sees in the trail (scans are counted, not listed).
TRAIL_KINDS = ("Issued", "Shipped", "Received", "Recalled", "FlaggedCounterfeit", "Decommissioned")


def place(region: str | None) -> dict | None:
    """A region code as a coarse place: city if known, else province; never finer."""
    if not region or len(region) < 2:
        return None
    code = region.rstrip("0") if len(region) == 6 else region  # 440000 -> 44, 440300 -> 4403
    for prefix in (code[:4], code[:2]):
        if len(prefix) >= 2 and prefix in PLACES:
            zh, en = PLACES[prefix]
            return {"code": prefix, "zh": zh, "en": en}
    return {"code": code[:2], "zh": code[:2], "en": code[:2]}


def parse_expiry_ai(value: str) -> tuple[str, bool]:
    """GS1 AI (17) ``YYMMDD`` → (``YYYY-MM-DD`` or ``YYYY-MM``, exact day?). DD=00 means the month."""
    v = unicodedata.normalize("NFKC", value or "").strip()
    if not (len(v) == 6 and v.isascii() and v.isdigit()):
        raise Refused("invalid_expiry", "expiry (AI 17) is 6 digits YYMMDD", field="17")
    yy, mm, dd = v[:2], v[2:4], v[4:]
    year = 2000 + int(yy)  # GS1's sliding century window, simplified: labels issued after 2000
    if not 1 <= int(mm) <= 12:
        raise Refused("invalid_expiry", "expiry (AI 17) has no such month", field="17")
    if dd == "00":
        return f"{year}-{mm}", False
    try:
        datetime(year, int(mm), int(dd))
    except ValueError:
        raise Refused("invalid_expiry", "expiry (AI 17) is not a calendar date", field="17") from None
    return f"{year}-{mm}-{dd}", True


def check_given(view: dict, *, gtin: str | None = None, lot: str | None = None, expiry: str | None = None) -> list[str]:
    """Contradictions between what the label's link says and the ledger (empty: none)."""
    out = []
    if gtin and view.get("gtin") and gtin != view["gtin"]:
        out.append("gtin_mismatch")
    if lot is not None and view.get("lot") is not None and lot != view["lot"]:
        out.append("lot_mismatch")
    if expiry is not None:
        given, exact = parse_expiry_ai(expiry)
        known = view.get("expiry")
        if known is None or (known != given if exact else not known.startswith(given)):
            out.append("expiry_mismatch")
    return out


def consumer_view(view: dict, *, profile: dict | None = None, gtin: str | None = None, lot: str | None = None, expiry: str | None = None) -> dict:
    """The consumer's view of a verification view; pure.

    ``profile``: the producer's signed profile (:func:`ledger.shopper_records.actor_profile`):
    its name, its names in Chinese and English and its hotline, all public on purpose.
    """
    profile = profile or {}
    serial = view["serial"]
    out = {
        "serial": serial,
        "short_code": shortcode.to_short_code(serial) if shortcode.has_short_code(serial) else None,
        "verdict": view["verdict"],
        "reasons": list(view.get("reasons") or []),
        "reason_codes": [dict(c) for c in view.get("reason_codes") or []],
        "scan_count": view.get("scan_count", 0),
        "first_scanned_at": view.get("first_scanned_at"),
    }
    if view.get("integrity"):  # the ledger's stored chain was altered: say why the verdict is not genuine
        out["integrity"] = view["integrity"]
    if view["verdict"] == "unknown" and not view.get("gtin"):
        return out | {"pin_protected": False, "trail": [], "problems": []}
    problems = check_given(view, gtin=gtin, lot=lot, expiry=expiry)
    if problems and out["verdict"] == "genuine":
        out["verdict"] = "suspicious"
    out["reasons"] += [PROBLEM_REASONS[p] for p in problems]
    out["reason_codes"] += [{"code": p, "arg": None} for p in problems]
    trail = []
    for step in view.get("trail") or []:
        if step.get("kind") not in TRAIL_KINDS:
            continue
        trail.append({"event": step["kind"], "place": place(step.get("region")), "date": (step.get("at") or "")[:10] or None})
    return out | {
        "product": view.get("product"),
        "producer": profile.get("name") or view.get("producer"),
        "producer_names": {"zh": profile.get("name_zh"), "en": profile.get("name_en")},
        "hotline": profile.get("hotline"),
        "gtin": view.get("gtin"),
        "lot": view.get("lot"),
        "expiry": view.get("expiry"),
        "pin_protected": bool(view.get("pin_protected")),
        "uri": view.get("uri"),
        "trail": trail,
        "problems": problems,
    }


PROBLEM_REASONS = {
    "gtin_mismatch": "this code belongs to another product (GTIN differs)",
    "lot_mismatch": "the lot printed with this code is not the lot on the ledger",
    "expiry_mismatch": "the expiry printed with this code is not the expiry on the ledger",
}


def display_key(cv: dict, pin: dict | None = None, *, own: dict | None = None, scanned: bool = False) -> str:
    """What the big verdict shows: the ledger's verdict, refined by who asked and the PIN.

    ``own``: this looker's share of the public count (``{"mine", "returning"}``): the
    count warns only when someone else asked too, and a returning looker alone reads
    "you checked this before". ``pin``: this looker's PIN outcome (``mine`` true when
    the first verification was theirs). A PIN label's verdict waits for its PIN.
    ``scanned``: the code came from a scanned link, so an unknown code cannot be a typo.
    """
    v = cv["verdict"]
    if v == "unknown":
        return "unknown_scanned" if scanned else "unknown"
    if v != "genuine":
        return v
    if cv.get("pin_protected"):
        outcome = (pin or {}).get("pin_result")
        if outcome in ("first_use", "already_used"):
            if pin.get("mine"):
                return "pin_seen" if pin.get("returning") else "pin_ok"
            return "pin_used" if outcome == "already_used" else "pin_ok"
        if outcome in ("wrong", "limited"):
            return "pin_" + outcome
        return "pin_needed"
    n = cv.get("scan_count", 0)
    mine = (own or {}).get("mine", 0)
    if n > 1 and n - mine >= 1:
        return "queried"
    if own and own.get("returning"):
        return "seen"
    return "genuine"


GOOD_KEYS = ("genuine", "seen", "pin_ok", "pin_seen")
CERT_STATUS = {"valid": ("有效", "valid"), "suspended": ("暂停", "suspended"), "revoked": ("撤销", "revoked"), None: (None, None)}


def certificate_warning(certificates: list[dict] | None) -> dict | None:
    """The first of a label's certificates that no longer holds (revoked before suspended), or None."""
    certs = [c for c in certificates or () if c.get("status") in ("revoked", "suspended")]
    certs.sort(key=lambda c: c["status"] != "revoked")
    return certs[0] if certs else None


def certified_key(key: str, certificates: list[dict] | None) -> str:
    """A good verdict (or "queried N times") turned into a warning when a certificate of the product was suspended
    or revoked (issue 17); recalled, counterfeit, suspicious and PIN states say more and stay."""
    bad = certificate_warning(certificates)
    if key not in (*GOOD_KEYS, "queried") or bad is None:  # the product's certificate outweighs a query count
        return key
    return "cert_" + bad["status"]


def cert_values(cv: dict | None) -> dict:
    """``s`` (the scheme, e.g. CCC) and ``d`` (since when, China date) of the view's certificate warning."""
    bad = (cv or {}).get("certificate_warning") or {}
    at = bad.get("status_at")
    return {"s": bad.get("scheme") or "", "d": local_time(at, "zh")[:10] if at else ""}


def local_time(iso: str | None, lang: str) -> str:
    """An ISO time as China time, minute precision (what a consumer reads)."""
    if not iso:
        return ""
    t = iso if isinstance(iso, datetime) else datetime.fromisoformat(iso)
    return t.astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M")


def short_time(iso, lang: str) -> str:
    """``MM-DD HH:MM`` China time: for the one-segment SMS."""
    if not iso:
        return ""
    t = iso if isinstance(iso, datetime) else datetime.fromisoformat(iso)
    return t.astimezone(CHINA_TIME).strftime("%m-%d %H:%M" if lang == "zh" else "%d %b %H:%M")


# ---------------------------------------------------------------- wording

TEXT = {
    "zh": {
        "title": "防伪查询",
        "genuine": "正品", "genuine_sub": "您是第一位查询此码的人。此码由生产企业登记，状态正常。",
        "seen": "正品 · 您已查询过", "seen_sub": "您于 {mine_t} 首次查询此码，此后没有其他人查询。",
        "queried": "请注意：\u200b此码已被查询\u00a0{n}\u00a0次", "queried_sub": "首次查询时间 {t}。若不是您或家人查询，谨防假冒。",
        "pin_needed": "刮开涂层\u200b输入防伪码\u200b完成验证", "pin_needed_sub": "此码已登记。输入涂层下的防伪码后才能确认真伪。",
        "pin_ok": "正品，\u200b防伪码验证通过", "pin_ok_sub": "这是此防伪码的首次验证（{pt}，就是您）。",
        "pin_seen": "正品 · 您已验证过", "pin_seen_sub": "您于 {pt} 首次验证了此防伪码。",
        "pin_wrong": "防伪码不正确", "pin_wrong_sub": "还可尝试\u00a0{left}\u00a0次。请核对涂层下的数字。",
        "pin_limited": "错误次数过多", "pin_limited_sub": "请 {m} 分钟后再试。",
        "pin_used": "警告：\u200b此防伪码已被验证过", "pin_used_sub": "首次验证：{pt}{where}。若不是您本人验证，此商品可能是仿冒品。",
        "unknown": "未查到此码", "unknown_sub": "防伪系统中没有这个编码。请核对输入后重试。",
        "unknown_scanned": "未查到 · 谨防假冒", "unknown_scanned_sub": "扫码得到的编码不在防伪系统中，此商品很可能是假冒。",
        "recalled": "已召回 · 立即停止使用", "recalled_sub": "此商品已被召回，请立即停止使用。",
        "counterfeit": "假冒商品", "counterfeit_sub": "监管部门已认定带有此码的商品为假冒。",
        "suspicious": "可疑", "suspicious_sub": "标签信息与防伪系统记录不符，请谨慎。",
        "cert_revoked": "注意：\u200b此产品的\u00a0{s}\u00a0证书\u200b已被撤销", "cert_revoked_sub": "此码已登记，但认证机构已于 {d} 撤销此产品的 {s} 证书。请谨慎购买和使用。",
        "cert_suspended": "注意：\u200b此产品的\u00a0{s}\u00a0证书\u200b已暂停", "cert_suspended_sub": "此码已登记，但认证机构已于 {d} 暂停此产品的 {s} 证书。请谨慎购买和使用。",
        "product": "产品", "producer": "生产企业", "lot": "批次", "expiry": "有效期", "serial": "序列号", "code": "数字码",
        "scans": "查询次数", "first_scan": "首次查询", "trail": "流转记录", "produced": "生产日期", "certificates": "认证证书",
        "cert_status_unknown": "状态以发证机构公布为准",
        "cert_valid": "有效", "cert_suspended_word": "暂停", "cert_revoked_word": "撤销", "cert_issuer": "发证机构", "cert_scope": "范围",
        "cert_until": "有效期至", "brand": "品牌", "product_image": "查看品牌登记的产品图片", "sellers": "授权销售商",
        "quality": "质量诚信承诺", "quality_standard": "执行标准", "committed": "承诺日期",
        "remedy": "补救措施", "remedy_refund": "退货退款", "remedy_replace": "更换", "remedy_repair": "维修", "remedy_inspect": "检查",
        "recall_notice": "召回公告", "recall_no": "召回编号",
        "Issued": "出厂", "Shipped": "发货", "Received": "到货", "Recalled": "召回", "FlaggedCounterfeit": "认定假冒", "Decommissioned": "注销",
        "pin_title": "刮开涂层，输入防伪码", "pin_label": "防伪码（6–12位数字）", "pin_button": "验证",
        "pin_placeholder": "6–12位数字",
        "pin_invalid": "防伪码为 6–12 位数字，请核对后重新输入。",
        "busy": "您所在网络的查询过于频繁，请 {m} 分钟后再试。",
        "next": "下一步", "next_ok": "请保留购物凭证。如有疑问，可举报或拨打投诉电话。",
        "next_bad": "请勿使用此商品，保留购物凭证和商品，举报或拨打投诉电话。",
        "next_recall": "请立即停止使用，不要自行拆修。联系购买的商家或生产企业办理召回（退货、更换或维修，费用由生产企业承担）。",
        "next_pin": "刮开标签上的涂层，输入下面的数字即可确认真伪。",
        "hazard": "召回原因（生产企业记录）", "recall_site": "国家缺陷产品召回网站", "hotline_12315": "市场监管投诉举报电话",
        "hotline_brand": "品牌客服电话",
        "report": "举报疑似假货", "report_title": "举报疑似假货", "report_place": "购买地点（店名或网店）",
        "report_price": "购买价格（元）", "report_phone": "联系电话（选填，便于监管部门回访）", "report_next": "下一步",
        "report_confirm_title": "请确认举报内容", "report_confirm": "确认提交", "report_edit": "返回修改",
        "report_help": "举报信息只提供给监管部门，不会公开，也不会写入公开的防伪记录。",
        "report_bad_place": "请填写购买地点（最多 80 字）。", "report_bad_price": "价格请填写数字，例如 129.00。",
        "report_bad_phone": "电话请填写 7–15 位数字。",
        "report_photo": "照片（选填，JPEG 或 PNG，不超过 2 MB）",
        "report_bad_photo_size": "照片不能超过 2 MB，请换一张或不附照片。",
        "report_bad_photo_type": "照片须为 JPEG 或 PNG 图片，请换一张或不附照片。",
        "reported": "已收到您的举报，编号 {n}。监管部门会处理，请保留购物凭证。",
        "enter_title": "输入标签上的编码", "enter_label": "标签上的编码", "enter_help": "20位序列号或32位数字码",
        "enter_button": "查询",
        "bad_code": "无法识别此编码：{d}", "other_lang": "English", "lang_label": "切换到英文",
        "reasons": "原因", "home": "防伪查询首页",
        "r_never_issued": "防伪系统中没有登记过这个编码",
        "r_flagged_counterfeit": "监管部门已认定带有此码的商品为假冒",
        "r_item_recalled": "此商品已被召回",
        "r_lot_recalled": "批次 {a} 已被召回",
        "r_container_recalled": "此商品所在的包装箱 {a} 已被召回",
        "r_input_lot_recalled": "生产此商品所用的原料批次 {a} 已被召回",
        "r_decommissioned": "此码已被注销，仍带有此码的商品可能是仿冒品",
        "r_gtin_mismatch": "此码属于另一种产品（商品条码不符）",
        "r_lot_mismatch": "标签上印的批次与登记的批次不符",
        "r_expiry_mismatch": "标签上印的有效期与登记的有效期不符",
        "r_integrity": "此码的防伪记录未通过完整性校验",
        "r_other": "此码状态异常",
        "e_invalid_serial": "序列号为 20 位字母和数字，数字码为 32 位数字。",
        "e_invalid_short_code": "数字码为 32 位数字，请核对位数。",
        "e_bad_check_digit": "数字码有误（校验位不符），可能输错了一位，请核对。",
        "e_invalid_link": "这个链接不完整或已损坏，请重新扫码。",
        "e_invalid_gtin": "链接中的商品条码无效，请重新扫码。",
        "e_invalid_lot": "链接中的批次无效，请重新扫码。",
        "e_invalid_expiry": "链接中的有效期无效，请重新扫码。",
        "e_other": "无法识别，请核对后重试。",
        "ch_web": "网页", "ch_app": "应用", "ch_sms": "短信", "ch_voice": "电话",
        "locate": "用我的位置核对", "locate_title": "用我的位置核对",
        "locate_help": "浏览器会先询问您是否允许读取位置。位置只用于发现窜货和仿冒，不会公开；它作为您的陈述记录，只有与您网络所在地一致时才被采信。",
        "locate_button": "允许并核对", "locate_wait": "正在读取位置……", "locate_denied": "未获得位置权限，没有记录任何位置。您的核对结果不受影响。",
        "locate_none": "此浏览器无法读取位置。您的核对结果不受影响。", "locate_noscript": "读取位置需要启用浏览器脚本。",
        "locate_back": "返回核对结果", "locate_bad": "位置数据无效，没有记录任何位置。",
        "located_in": "已用您的位置核对：您的位置与网络所在地一致，已作为参考记录。",
        "located_out": "已记录您提供的位置。它与网络所在地不符，只作为您的陈述保存，不作为查询地点。",
        "via": "，通过{c}", "near": "，{p}附近",
    },
    "en": {
        "title": "Product check",
        "genuine": "Genuine", "genuine_sub": "You are the first to check this code. It was registered by its producer and is in good standing.",
        "seen": "Genuine · you checked before", "seen_sub": "You first checked this code at {mine_t}; nobody else has since.",
        "queried": "Caution: this code has been queried {n}\u00a0times", "queried_sub": "First queried {t}. If that was not you or your family, beware of a copy.",
        "pin_needed": "Scratch the coating and enter the PIN to finish the check", "pin_needed_sub": "This code is registered. Only the PIN under the coating confirms the item.",
        "pin_ok": "Genuine, PIN verified", "pin_ok_sub": "First verification of this PIN ({pt}: that was you).",
        "pin_seen": "Genuine · you verified this PIN", "pin_seen_sub": "You first verified this PIN at {pt}.",
        "pin_wrong": "Wrong PIN", "pin_wrong_sub": "{left}\u00a0tries left. Check the digits under the coating.",
        "pin_limited": "Too many wrong tries", "pin_limited_sub": "Please try again in {m} minutes.",
        "pin_used": "Warning: this PIN was already verified", "pin_used_sub": "First verified {pt}{where}. If that was not you, this item may be a copy.",
        "unknown": "Unknown code", "unknown_sub": "This code is not in the system. Check what you typed and try again.",
        "unknown_scanned": "Not found · beware of fakes", "unknown_scanned_sub": "The scanned code is not in the system: this item is very likely a fake.",
        "recalled": "Recalled · stop using it now", "recalled_sub": "This item has been recalled. Stop using it now.",
        "counterfeit": "Counterfeit", "counterfeit_sub": "A regulator found an item bearing this code to be counterfeit.",
        "suspicious": "Suspicious", "suspicious_sub": "The label does not match the recorded one. Be careful.",
        "cert_revoked": "Caution: this product's {s} certificate was revoked", "cert_revoked_sub": "The code is registered, but the certification body revoked this product's {s} certificate on {d}. Be careful buying or using it.",
        "cert_suspended": "Caution: this product's {s} certificate is suspended", "cert_suspended_sub": "The code is registered, but the certification body suspended this product's {s} certificate on {d}. Be careful buying or using it.",
        "product": "Product", "producer": "Producer", "lot": "Lot", "expiry": "Expiry", "serial": "Serial", "code": "Number code",
        "scans": "Queries", "first_scan": "First query", "trail": "Trail", "produced": "Produced", "certificates": "Certificates",
        "cert_status_unknown": "status as published by the issuer",
        "cert_valid": "valid", "cert_suspended_word": "suspended", "cert_revoked_word": "revoked", "cert_issuer": "Issued by", "cert_scope": "Scope",
        "cert_until": "Valid until", "brand": "Brand", "product_image": "See the product image the brand registered", "sellers": "Authorised sellers",
        "quality": "Quality commitment", "quality_standard": "Standard", "committed": "Committed on",
        "remedy": "Remedy", "remedy_refund": "refund", "remedy_replace": "replacement", "remedy_repair": "repair", "remedy_inspect": "inspection",
        "recall_notice": "Recall notice", "recall_no": "Recall no.",
        "Issued": "Issued", "Shipped": "Shipped", "Received": "Received", "Recalled": "Recalled", "FlaggedCounterfeit": "Flagged counterfeit", "Decommissioned": "Decommissioned",
        "pin_title": "Scratch the coating and enter the PIN", "pin_label": "PIN (6-12 digits)", "pin_button": "Verify",
        "pin_placeholder": "6-12 digits",
        "pin_invalid": "The PIN is 6-12 digits: please check and enter it again.",
        "busy": "Too many queries from your network: please try again in {m} minutes.",
        "next": "What next", "next_ok": "Keep your receipt. If in doubt, report it or call the complaints line.",
        "next_bad": "Do not use this item; keep it and your receipt, and report it or call the complaints line.",
        "next_recall": "Stop using it now and do not repair it yourself. Contact the seller or the producer for the recall (refund, replacement or repair at the producer's cost).",
        "next_pin": "Scratch the coating on the label and enter the digits below to confirm the item.",
        "hazard": "Why it was recalled (as recorded by the producer)", "recall_site": "National defective product recall site",
        "hotline_12315": "market regulator complaints line", "hotline_brand": "Brand customer service",
        "report": "Report a suspected fake", "report_title": "Report a suspected fake", "report_place": "Where you bought it (shop or online store)",
        "report_price": "Price paid (CNY)", "report_phone": "Phone (optional, for the regulator to call back)", "report_next": "Next",
        "report_confirm_title": "Please confirm your report", "report_confirm": "Send report", "report_edit": "Change",
        "report_help": "Your report goes to regulators only: it is not published and not written to the public record.",
        "report_bad_place": "Please say where you bought it (at most 80 characters).", "report_bad_price": "Enter the price as a number, e.g. 129.00.",
        "report_bad_phone": "A phone number is 7-15 digits.",
        "report_photo": "Photo (optional, JPEG or PNG, up to 2 MB)",
        "report_bad_photo_size": "The photo must be at most 2 MB: choose another or send none.",
        "report_bad_photo_type": "The photo must be a JPEG or PNG image: choose another or send none.",
        "reported": "Report received, no. {n}. Regulators will follow it up; keep your receipt.",
        "enter_title": "Enter the code on the label", "enter_label": "Code on the label", "enter_help": "20-character serial or 32-digit number code",
        "enter_button": "Check",
        "bad_code": "Cannot read this code: {d}", "other_lang": "中文", "lang_label": "Switch to Chinese",
        "reasons": "Why", "home": "Product check home",
        "r_never_issued": "this code was never registered",
        "r_flagged_counterfeit": "a regulator flagged an item bearing this code as counterfeit",
        "r_item_recalled": "this item has been recalled",
        "r_lot_recalled": "lot {a} has been recalled",
        "r_container_recalled": "the case {a} this item was in has been recalled",
        "r_input_lot_recalled": "input lot {a} it was made from has been recalled",
        "r_decommissioned": "this code was decommissioned; an item still carrying it may be a copy",
        "r_gtin_mismatch": "this code belongs to another product (GTIN differs)",
        "r_lot_mismatch": "the lot printed with this code is not the registered lot",
        "r_expiry_mismatch": "the expiry printed with this code is not the registered expiry",
        "r_integrity": "this code's record failed an integrity check",
        "r_other": "this code's status is abnormal",
        "e_invalid_serial": "A serial is 20 letters and digits; a number code is 32 digits.",
        "e_invalid_short_code": "A number code is 32 digits: please count them.",
        "e_bad_check_digit": "The number code has a typo (check digit wrong): please check it.",
        "e_invalid_link": "This link is incomplete or damaged: please scan again.",
        "e_invalid_gtin": "The product number in the link is invalid: please scan again.",
        "e_invalid_lot": "The lot in the link is invalid: please scan again.",
        "e_invalid_expiry": "The expiry in the link is invalid: please scan again.",
        "e_other": "Cannot read this: please check and try again.",
        "ch_web": "web page", "ch_app": "app", "ch_sms": "SMS", "ch_voice": "phone",
        "locate": "Check with my location", "locate_title": "Check with my location",
        "locate_help": "Your browser will ask whether to share your location. It is used only to detect diverted and fake goods and is never published; it is kept as your claim and believed only where it matches your network's location.",
        "locate_button": "Share and check", "locate_wait": "Reading your location…", "locate_denied": "No permission to read your location: nothing was recorded. Your result is unchanged.",
        "locate_none": "This browser cannot read a location. Your result is unchanged.", "locate_noscript": "Reading your location needs scripts enabled.",
        "locate_back": "Back to the result", "locate_bad": "That location is not valid: nothing was recorded.",
        "located_in": "Checked with your location: it matches your network's location and was recorded for reference.",
        "located_out": "Your location was recorded as your claim only: it does not match your network's location, so it is not taken as where you checked.",
        "via": " by {c}", "near": " near {p}",
    },
}

def reason_text(code: dict, lang: str) -> str:
    """A reason code (``{"code", "arg"}``, :data:`projections.verdict.REASON_CODES` or a link problem) in ``lang``."""
    return TEXT[lang].get("r_" + str(code.get("code")), TEXT[lang]["r_other"]).format(a=code.get("arg") or "")


def error_text(code: str, lang: str) -> str:
    """An entry-page or link error (a :class:`ledger.errors.Refused` code) in ``lang``."""
    return TEXT[lang].get("e_" + code, TEXT[lang]["e_other"])


def pick_lang(query_lang: str | None, accept_language: str | None) -> str:
    """``?lang=`` wins; else the first of zh/en in Accept-Language by q; else Chinese."""
    if query_lang in LANGS:
        return query_lang
    best, best_q = "zh", -1.0
    for part in (accept_language or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGS:
            continue
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if q > best_q:
            best, best_q = primary, q
    return best


# ---------------------------------------------------------------- SMS

_URL_SERIAL = re.compile(r"/21/([0-9A-Za-z]{1,20})")
_LANG_WORDS = {"EN", "ENG", "ENGLISH"}
# Words people put around the code ("查询 …", "验证…", "CX …"): dropped, like punctuation.
# Latin keywords only as whole words: CX and YZ also occur inside serials.
_KEYWORDS = re.compile(r"查询|查真伪|查一下|验证|验真|防伪码|防伪|查|(?<![0-9A-Za-z])(?:CX|YZ|CHECK|VERIFY|PIN)(?![0-9A-Za-z])", re.I)
SMS_SIGNATURE = "【防伪查询】"  # the sender signature Chinese carriers require on every message


def parse_sms(text: str) -> tuple[str, str | None, str]:
    """(serial, PIN or None, lang) from an SMS body; refuses what cannot be read.

    Tolerant of what people type: a keyword such as ``查询`` or ``验证``, any
    punctuation (``，`` ``。`` ``-``), full-width digits and spaces, a sentence
    around the code. Reads the 32-digit short code (optionally followed by the
    PIN), the 20-character serial (any case, Crockford's O/0 and I/L/1) stuck to
    or followed by the PIN, a pasted Digital Link URL, and a leading ``EN`` for English.
    """
    if not isinstance(text, str) or not text.strip():
        raise Refused("empty", "the message is empty", field="text")
    text = unicodedata.normalize("NFKC", text)[:200].strip()
    lang = "zh"
    words = text.split()
    if words and words[0].upper() in _LANG_WORDS:
        lang, text = "en", " ".join(words[1:])
    url = _URL_SERIAL.search(text)
    if url:
        return shortcode.normalize_serial(url.group(1)), _trailing_pin(text[url.end():]), lang
    tokens = re.findall(r"[0-9A-Za-z]+", _KEYWORDS.sub(" ", text))
    for i, token in enumerate(tokens):
        if len(token) >= gs1.SERIAL_LEN and not token.isdigit() and token.isascii():
            serial = shortcode.normalize_serial(token[: gs1.SERIAL_LEN])
            if _is_serial(serial):  # not only serials that also have a number code (~3 % have none)
                return serial, _pin_of(token[gs1.SERIAL_LEN:] + "".join(tokens[i + 1:])), lang
    squeezed = "".join(t for t in tokens if t.isdigit())
    if not squeezed:
        raise Refused("unreadable", "no code in the message", field="text")
    if len(squeezed) == shortcode.LENGTH:
        return shortcode.from_short_code(squeezed), None, lang
    if shortcode.LENGTH + pins.MIN_DIGITS <= len(squeezed) <= shortcode.LENGTH + pins.MAX_DIGITS:
        return shortcode.from_short_code(squeezed[: shortcode.LENGTH]), squeezed[shortcode.LENGTH:], lang
    raise Refused("invalid_short_code", f"a number code is {shortcode.LENGTH} digits", field="text")


def _is_serial(candidate: str) -> bool:
    try:
        gs1.validate_serial(candidate)
    except Refused:
        return False
    return True


def _pin_of(rest: str) -> str | None:
    if not rest:
        return None
    if not (rest.isdigit() and pins.MIN_DIGITS <= len(rest) <= pins.MAX_DIGITS):
        raise Refused("invalid_pin", "after the code, only the PIN's digits", field="text")
    return rest


def _trailing_pin(rest: str) -> str | None:
    digits = shortcode.clean_digits(rest.split("?")[0].split("/")[-1] if "/" in rest else rest)
    return digits if digits.isdigit() and pins.MIN_DIGITS <= len(digits) <= pins.MAX_DIGITS else None


# Every reply starts with SMS_SIGNATURE and fits one UCS-2 segment with it (the product name is shortened).
SMS = {
    "zh": {
        "genuine": "正品：{p}。首次查询。",
        "seen": "正品：{p}。您{mt}已查询过，无他人查询。",
        "queried": "注意：此码已查询{n}次，首次{t}，谨防假冒。{p}",
        "pin_needed": "此码已登记。请刮开涂层，回复“数字码 防伪码”完成验证。",
        "pin_ok": "正品，防伪码首次验证通过：{p}",
        "pin_seen": "正品：您已于{pt}验证过此防伪码。{p}",
        "pin_used": "警告：此防伪码已于{pt}验证过，谨防假冒。{p}",
        "pin_wrong": "防伪码错误，还可尝试{left}次。",
        "pin_limited": "错误次数过多，请{m}分钟后再试。",
        "unknown": "未查到此码，谨防假冒。请勿使用，可拨打12315举报。",
        "unknown_scanned": "未查到此码，谨防假冒。请勿使用，可拨打12315举报。",
        "recalled": "已召回，立即停止使用：{p}。请联系商家办理召回。",
        "counterfeit": "假冒！此码已被监管部门认定为假冒。请拨打12315。",
        "suspicious": "可疑：此码状态异常，请谨慎。{p}",
        "suspicious_decommissioned": "可疑：此码已注销，带此码的商品可能是仿冒品。{p}",
        "cert_revoked": "注意：此产品的{s}证书已被撤销，请谨慎。{p}",
        "cert_suspended": "注意：此产品的{s}证书已暂停，请谨慎。{p}",
        "suspicious_integrity": "可疑：此码的记录未通过完整性校验，请谨慎。{p}",
        "suspicious_mismatch": "可疑：标签信息与登记记录不符，谨防假冒。{p}",
        "bad": "无法识别。请发送标签上的32位数字码，有防伪码的空格后附上。",
        "bad_check": "数字码有误（校验位不符），请核对后重发。",
        "busy": "查询过于频繁，请{m}分钟后再试。谢谢。",
    },
    "en": {
        "genuine": "Genuine: {p}. First query.",
        "seen": "Genuine: {p}. You checked at {mt}; nobody else.",
        "queried": "Caution: queried {n} times, first {t}. {p}",
        "pin_needed": "Registered. Scratch the label and reply: code PIN.",
        "pin_ok": "Genuine, PIN verified (first use): {p}",
        "pin_seen": "Genuine: you verified this PIN {pt}. {p}",
        "pin_used": "Warning: PIN already used {pt}. {p}",
        "pin_wrong": "Wrong PIN: {left} tries left.",
        "pin_limited": "Too many wrong PINs: try in {m} min.",
        "unknown": "Not found: beware of fakes. Do not use it; call 12315.",
        "unknown_scanned": "Not found: beware of fakes. Do not use it; call 12315.",
        "recalled": "RECALLED, stop using it now: {p}. Ask the seller.",
        "counterfeit": "COUNTERFEIT: flagged by a regulator. Call 12315.",
        "suspicious": "Suspicious code: be careful. {p}",
        "suspicious_decommissioned": "Suspicious: code withdrawn, may be a copy. {p}",
        "cert_revoked": "Caution: {s} certificate revoked. {p}",
        "cert_suspended": "Caution: {s} certificate suspended. {p}",
        "suspicious_integrity": "Suspicious: record failed a check. {p}",
        "suspicious_mismatch": "Suspicious: label differs from record. {p}",
        "bad": "Unreadable. Send the 32-digit code, then PIN if any.",
        "bad_check": "Code mistyped (check digit wrong): please resend.",
        "busy": "Too many messages: please try again in {m} min. Thanks.",
    },
}


def ucs2_len(text: str) -> int:
    """Length in UCS-2 code units (what an SMS segment limit counts)."""
    return len(text.encode("utf-16-le")) // 2


def fit(template: str, limit: int = SMS_LIMIT, **values) -> str:
    """``template`` filled in, shortening the product name ``p`` until it fits ``limit``."""
    product = str(values.pop("p", "") or "")
    text = template.format(p=product, **values)
    while ucs2_len(text) > limit and product:
        product = product[:-2] + "…" if len(product) > 2 else ""
        text = template.format(p=product, **values)
    if ucs2_len(text) > limit:  # still long (should not happen with our wording): hard cut
        text = text[: limit - 1] + "…"
    return text


def reply_values(key: str, lang: str, cv: dict | None, pin: dict | None, mine_first=None) -> dict:
    """The values a reply's template is filled with."""
    cv, pin = cv or {}, pin or {}
    first = (pin.get("first") or {}).get("at") or pin.get("pin_first_verified_at")
    product = (cv.get("product_names") or {}).get(lang) or cv.get("product") or ""  # the signed name in the reply's language
    return cert_values(cv) | {"p": product, "n": cv.get("scan_count", 0), "t": short_time(cv.get("first_scanned_at"), lang),
            "pt": short_time(first, lang), "mt": short_time(mine_first, lang), "left": pin.get("attempts_left") or 0,
            "m": max(1, -(-(pin.get("retry_after") or 60) // 60))}


# A suspicious verdict's first reason code -> the SMS and voice wording that says why.
_SUSPICIOUS_BECAUSE = {"decommissioned": "suspicious_decommissioned", "integrity": "suspicious_integrity",
                       "gtin_mismatch": "suspicious_mismatch", "lot_mismatch": "suspicious_mismatch", "expiry_mismatch": "suspicious_mismatch"}


def reply_key(key: str, cv: dict | None) -> str:
    """The SMS/voice wording of a display key: a suspicious verdict says why, from the view's reason codes."""
    if key != "suspicious":
        return key
    for c in (cv or {}).get("reason_codes") or ():
        if c.get("code") in _SUSPICIOUS_BECAUSE:
            return _SUSPICIOUS_BECAUSE[c["code"]]
    return key


def sms_reply(key: str, lang: str, cv: dict | None = None, pin: dict | None = None, *, mine_first=None, signed: bool = True) -> str:
    """One-segment reply for a display key (see :func:`display_key`), ``bad`` or ``bad_check``.

    Signed (:data:`SMS_SIGNATURE` first) and ≤ :data:`SMS_LIMIT` UCS-2 characters with it.
    """
    sig = SMS_SIGNATURE if signed else ""
    return fit(sig + SMS[lang][reply_key(key, cv)], **reply_values(key, lang, cv, pin, mine_first))


def busy_text(lang: str, retry_after: int, texts: dict | None = None) -> str:
    """A polite "too many requests, try again in m minutes" (the page's text, or ``texts`` such as :data:`SMS`)."""
    if texts is None:
        return fit(TEXT[lang]["busy"], limit=200, m=max(1, -(-retry_after // 60)))
    return fit(SMS_SIGNATURE + texts[lang]["busy"], m=max(1, -(-retry_after // 60)))


# ---------------------------------------------------------------- phone

# The phone line's prompts, step by step (the IVR flow is in traceledger.api.shopper.voice).
# A prompt is phrases, each ending in a full stop: the audio pauses between them.
VOICE = {
    "zh": {
        "welcome": "您好，这里是防伪查询。请输入标签上的32位数字码，以井号键结束。",
        "bad_code": "号码位数不对。请重新输入32位数字码，以井号键结束。",
        "bad_check": "号码有误，可能按错了一位。请重新输入，以井号键结束。",
        "pin": "这是双层防伪标签。请刮开涂层，输入防伪码，以井号键结束。",
        "bad_pin": "防伪码为6到12位数字。请重新输入，以井号键结束。",
        "again": "请重新输入防伪码。",
        "give_up": "输入错误次数过多，请核对后再拨。再见。",
        "bye": "感谢您的查询，再见。",
        "busy": "您的查询过于频繁，请稍后再拨。谢谢，再见。",
        "you_keyed": "您输入的是：{d}。",
        "hotline": "品牌客服电话：{h}。",
        "this_product": "此商品",
    },
    "en": {
        "welcome": "Welcome to product check. Enter the 32-digit code on the label, then the hash key.",
        "bad_code": "That was not 32 digits. Enter the code again, then the hash key.",
        "bad_check": "A digit seems mistyped. Enter the code again, then the hash key.",
        "pin": "This label has a scratch-off PIN. Scratch it and enter the PIN, then the hash key.",
        "bad_pin": "The PIN is 6 to 12 digits. Enter it again, then the hash key.",
        "again": "Enter the PIN again.",
        "give_up": "Too many errors. Please check and call again. Goodbye.",
        "bye": "Thank you, goodbye.",
        "busy": "You have called many times. Please try again later. Thank you, goodbye.",
        "you_keyed": "You keyed: {d}.",
        "hotline": "The brand's service line is {h}.",
        "this_product": "this product",
    },
}


def spoken_digits(digits: str, lang: str) -> str:
    """Digits as a speech synthesizer reads them one by one, in groups of four ("1 2 3 4, 5 6 7 8")."""
    sep = "，" if lang == "zh" else ", "
    return sep.join(" ".join(digits[i:i + 4]) for i in range(0, len(digits), 4))


def speakable_name(name: str | None, lang: str) -> str:
    """A name the call's voice can say: an English call skips a name written in Chinese (it would be read as
    "Chinese letter ..."), saying "this product" instead."""
    if not name:
        return VOICE[lang]["this_product"]
    if lang == "en" and not name.isascii():
        return VOICE[lang]["this_product"]
    return name


def voice_verdict(key: str, lang: str, cv: dict | None = None, pin: dict | None = None, *, mine_first=None) -> str:
    """The verdict as a phrase for the phone: the SMS wording without the signature, the name said in the call's language."""
    cv = dict(cv or {})
    cv["product"] = speakable_name((cv.get("product_names") or {}).get(lang) or cv.get("product"), lang)
    cv["product_names"] = None
    text = fit(SMS[lang][reply_key(key, cv)], limit=200, **reply_values(key, lang, cv, pin, mine_first))
    return text if text.endswith(("。", ".", "！", "!")) else text + ("。" if lang == "zh" else ".")
