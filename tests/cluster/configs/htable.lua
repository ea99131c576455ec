-- X-Set: key=value stores an item in $sht(shared); X-Get: key answers with its value.
function ksr_request_route()
  local set = KSR.hdr.get("X-Set")
  if set ~= nil then
    local k, v = string.match(set, "^([^=]+)=(.*)$")
    KSR.htable.sht_sets("shared", k, v)
    KSR.sl.sl_send_reply(200, "Stored")
    return
  end
  local key = KSR.hdr.get("X-Get") or ""
  KSR.sl.sl_send_reply(200, "Value " .. tostring(KSR.pv.get("$sht(shared=>" .. key .. ")")))
end
