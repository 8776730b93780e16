#!/usr/bin/env python3
"""Probe an ONVIF device: every operation the issue needs, digest auth, stale Created.
usage: probe.py PORT USER PASSWORD [CLOCK_OFFSET_S]
CLOCK_OFFSET_S: the offset the client should sign with (learned from GetSystemDateAndTime
when 'auto')."""
import base64, hashlib, os, re, sys, time, urllib.request, urllib.error
from datetime import datetime, timezone, timedelta

PORT, USER, PW = int(sys.argv[1]), sys.argv[2], sys.argv[3]
OFFSET = sys.argv[4] if len(sys.argv) > 4 else '0'
BASE = f'http://127.0.0.1:{PORT}'
VERBOSE = os.environ.get('VERBOSE')


def token(user, pw, created_dt):
    nonce = os.urandom(16)
    created = created_dt.strftime('%Y-%m-%dT%H:%M:%S.000Z')
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + pw.encode()).digest()).decode()
    return f'''<s:Header><wsse:Security s:mustUnderstand="1" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"><wsse:UsernameToken><wsse:Username>{user}</wsse:Username><wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">{digest}</wsse:Password><wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">{base64.b64encode(nonce).decode()}</wsse:Nonce><wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header>'''


def call(path, action_ns, body, user=USER, pw=PW, skew=0.0, auth=True):
    hdr = token(user, pw, datetime.now(timezone.utc) + timedelta(seconds=skew)) if auth else ''
    env = (f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
           f'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
           f'xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">'
           f'{hdr}<s:Body>{body}</s:Body></s:Envelope>')
    op = re.match(r'<\w+:(\w+)', body).group(1)
    req = urllib.request.Request(BASE + path, data=env.encode(), method='POST', headers={
        'Content-Type': f'application/soap+xml; charset=utf-8; action="{action_ns}/{op}"'})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if VERBOSE:
        print(f'--- {op} -> {status}\n{text}\n')
    return status, text


DEV = ('/onvif/device_service', 'http://www.onvif.org/ver10/device/wsdl')
MED = ('/onvif/media_service', 'http://www.onvif.org/ver10/media/wsdl')
PTZ = ('/onvif/ptz_service', 'http://www.onvif.org/ver20/ptz/wsdl')
results = []


def check(name, cond, detail=''):
    results.append(cond)
    print(f"{'PASS' if cond else 'FAIL'} {name} {detail}")


# 1. clock, unauthenticated
t0 = time.time()
st, x = call(*DEV, '<tds:GetSystemDateAndTime/>', auth=False)
m = {k: int(re.search(rf'<tt:{k}>(\d+)</tt:{k}>', x.split('UTCDateTime')[1]).group(1))
     for k in ('Hour', 'Minute', 'Second', 'Year', 'Month', 'Day')} if st == 200 else None
dev_now = datetime(m['Year'], m['Month'], m['Day'], m['Hour'], m['Minute'], m['Second'], tzinfo=timezone.utc) if m else None
measured = (dev_now - datetime.now(timezone.utc)).total_seconds() if dev_now else 0
check('GetSystemDateAndTime (no token)', st == 200, f'status={st} device-offset~{measured:.0f}s')
skew = round(measured) if OFFSET == 'auto' else float(OFFSET)

c = lambda *a, **k: call(*a, skew=skew, **k)
st, x = c(*DEV, '<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>')
check('GetCapabilities', st == 200 and 'ptz_service' in x, f'status={st} PTZ XAddr={re.search(r"<tt:PTZ>.*?<tt:XAddr>(.*?)</tt:XAddr>", x, re.S).group(1) if "<tt:PTZ>" in x else None}')
st, x = c(*DEV, '<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability></tds:GetServices>')
check('GetServices', st == 200 and 'ver20/ptz/wsdl' in x, f'status={st} namespaces={re.findall(r"<tds:Namespace>(.*?)</tds:Namespace>", x)}')
st, x = c(*MED, '<trt:GetProfiles/>')
profs = re.findall(r'<trt:Profiles[^>]*token="([^"]+)"', x)
check('GetProfiles has PTZConfiguration', st == 200 and 'PTZConfiguration' in x, f'status={st} profiles={profs}')
prof = profs[0] if profs else 'Profile_1'


def status():
    st, x = c(*PTZ, f'<tptz:GetStatus><tptz:ProfileToken>{prof}</tptz:ProfileToken></tptz:GetStatus>')
    pt = re.search(r'PanTilt[^>]*x="([^"]*)"[^>]*y="([^"]*)"', x)
    z = re.search(r'Zoom[^>]*x="([^"]*)"', x)
    mv = re.search(r'MoveStatus>\s*<tt:PanTilt>([^<]*)<.*?UtcTime>([^<]*)<', x, re.S)
    return st, (float(pt.group(1)), float(pt.group(2)), float(z.group(1))), (mv.groups() if mv else x[-400:])


st, p0, mv = status()
check('GetStatus', st == 200, f'pos={p0} move={mv}')
st, x = c(*PTZ, f'<tptz:ContinuousMove><tptz:ProfileToken>{prof}</tptz:ProfileToken><tptz:Velocity>'
          '<tt:PanTilt x="0.2" y="-0.1"/><tt:Zoom x="0.1"/></tptz:Velocity><tptz:Timeout>PT1S</tptz:Timeout></tptz:ContinuousMove>')
time.sleep(0.5)
_, p1, mv1 = status()
check('ContinuousMove changes position', st == 200 and p1[0] > p0[0] and p1[1] < p0[1] and p1[2] > p0[2], f'{p0} -> {p1} {mv1}')
st, x = c(*PTZ, f'<tptz:Stop><tptz:ProfileToken>{prof}</tptz:ProfileToken><tptz:PanTilt>true</tptz:PanTilt><tptz:Zoom>true</tptz:Zoom></tptz:Stop>')
_, p2, mv2 = status(); time.sleep(0.5); _, p3, mv3 = status()
check('Stop stops it', st == 200 and p2 == p3, f'{p2} == {p3} {mv3}')
# Timeout honoured?  (move without Stop, see after 1.5 s)
c(*PTZ, f'<tptz:ContinuousMove><tptz:ProfileToken>{prof}</tptz:ProfileToken><tptz:Velocity><tt:PanTilt x="-0.1" y="0"/></tptz:Velocity><tptz:Timeout>PT0.3S</tptz:Timeout></tptz:ContinuousMove>')
time.sleep(1.0); _, pa, _ = status(); time.sleep(0.5); _, pb, mvb = status()
print(f'INFO ContinuousMove Timeout PT0.3S honoured by device: {pa == pb} ({pa} -> {pb} {mvb})')
c(*PTZ, f'<tptz:Stop><tptz:ProfileToken>{prof}</tptz:ProfileToken><tptz:PanTilt>true</tptz:PanTilt><tptz:Zoom>true</tptz:Zoom></tptz:Stop>')
_, here, _ = status()
st, x = c(*PTZ, f'<tptz:SetPreset><tptz:ProfileToken>{prof}</tptz:ProfileToken><tptz:PresetName>door</tptz:PresetName></tptz:SetPreset>')
tok = re.search(r'PresetToken>([^<]+)<', x)
check('SetPreset returns token', st == 200 and bool(tok), f'token={tok.group(1) if tok else x[-300:]}')
st, x = c(*PTZ, f'<tptz:GetPresets><tptz:ProfileToken>{prof}</tptz:ProfileToken></tptz:GetPresets>')
found = re.findall(r'Preset token="([^"]+)">\s*<tt:Name>([^<]*)', x)
check('GetPresets lists it', st == 200 and 'door' in x, f'presets={found}')
st, x = c(*PTZ, f'<tptz:GotoPreset><tptz:ProfileToken>{prof}</tptz:ProfileToken><tptz:PresetToken>home</tptz:PresetToken></tptz:GotoPreset>')
_, ph, _ = status()
check('GotoPreset home -> 0,0,0', st == 200 and ph == (0.0, 0.0, 0.0), f'{ph}')
if tok:
    c(*PTZ, f'<tptz:GotoPreset><tptz:ProfileToken>{prof}</tptz:ProfileToken><tptz:PresetToken>{tok.group(1)}</tptz:PresetToken></tptz:GotoPreset>')
    _, pd, _ = status()
    check('GotoPreset door -> saved position', pd == here, f'{pd} == {here}')
st, x = c(*PTZ, f'<tptz:GotoPreset><tptz:ProfileToken>{prof}</tptz:ProfileToken><tptz:PresetToken>nope</tptz:PresetToken></tptz:GotoPreset>')
print(f'INFO GotoPreset unknown token -> status {st} ({"Fault" if "Fault" in x else "no fault"})')

# auth negatives
st, x = call(*MED, '<trt:GetProfiles/>', pw=PW + 'x', skew=skew)
flat = re.sub(r'\s+', ' ', x)[-200:]
check('wrong password rejected', st != 200 and 'Fault' in x, f'status={st} {flat}')
st, x = call(*MED, '<trt:GetProfiles/>', user=USER + 'x', skew=skew)
check('wrong user rejected', st != 200, f'status={st}')
st, x = call(*MED, '<trt:GetProfiles/>', auth=False)
check('no token rejected', st != 200, f'status={st}')
st, x = call(*MED, '<trt:GetProfiles/>', skew=skew - 600)
check('Created 10 min old rejected', st != 200, f'status={st}')
st, x = call(*MED, '<trt:GetProfiles/>', skew=skew + 600)
check('Created 10 min in future rejected', st != 200, f'status={st}')
st, x = call(*MED, '<trt:GetProfiles/>', skew=skew - 240)
check('Created 4 min old accepted', st == 200, f'status={st}')
st, x = call(*PTZ, f'<tptz:Stop><tptz:ProfileToken>{prof}</tptz:ProfileToken></tptz:Stop>', pw='bad', skew=skew)
check('wrong password on PTZ Stop rejected', st != 200, f'status={st}')
# namespace well-formedness of a PTZ reply
import xml.dom.minidom, xml.parsers.expat
for op in ('GetStatus', 'GetPresets'):
    st, x = c(*PTZ, f'<tptz:{op}><tptz:ProfileToken>{prof}</tptz:ProfileToken></tptz:{op}>')
    try:
        p = xml.parsers.expat.ParserCreate(namespace_separator=' '); p.Parse(x.encode(), True); ok = True; err = ''
    except xml.parsers.expat.ExpatError as e:
        ok, err = False, str(e)
    check(f'{op} reply namespace-well-formed', ok, err)
print(f'{sum(results)} passed, {len(results) - sum(results)} failed')
