-- Routes a unary ModelInfer by the model and version named inside its message.
--
-- The Open Inference Protocol names the model in the protobuf body (fields 1 and 2 of
-- inference.ModelInferRequest), not in a header, so Envoy cannot route on it by itself. This
-- script reads the one gRPC frame of the request, walks its top-level fields without copying
-- the tensors (only keys, lengths and the two strings are read), sets the mesh's model and
-- version headers (any a client sent are removed first, on every request) and clears the
-- route cache so the route table picks the variant. A body that is not one uncompressed
-- ModelInferRequest is answered here, at once, with a gRPC status that says why.
--
-- Rendered into the front listener by body_routing.py; {{...}} names are filled in there.

local MODEL_HEADER = "{{MODEL_HEADER}}"
local VERSION_HEADER = "{{VERSION_HEADER}}"
local HOP_HEADER, FRONT_HOP = "{{HOP_HEADER}}", "{{FRONT_HOP}}"
local INTERNAL_HEADERS = { {{INTERNAL_HEADERS}} }
local INFER_PATH = "/inference.GRPCInferenceService/ModelInfer"
local MAX_NAME = 256     -- longer names are not served by any mesh: answered NOT_FOUND
local MAX_ID = 128       -- a longer request id is not usable as a header (the adapter makes a new one)
local REQUEST_ID_HEADER = "x-request-id"
local WINDOW = 64        -- bytes fetched from the body at a time while walking its fields

local INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED = "3", "5", "12"

-- grpc-message is percent-encoded (gRPC's HTTP/2 protocol): anything outside printable ASCII, and %.
local function encoded(text)
  return (text:gsub("[^ -$&-~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function answer(handle, status, message)
  handle:respond({[":status"] = "200", ["content-type"] = "application/grpc",
                  ["grpc-status"] = status, ["grpc-message"] = encoded(message)}, "")
end

-- A reader over the buffered body that fetches small windows, so a 100 MB tensor is skipped,
-- never copied into Lua.
local function reader(body, first, last)
  local window, start = "", first
  local function byte(i)
    if i < start or i >= start + #window then
      start = i
      window = body:getBytes(i, math.min(WINDOW, last - i + 1))
    end
    return window:byte(i - start + 1)
  end
  local function text(i, length)
    return body:getBytes(i, length)
  end
  return byte, text
end

-- Returns value, next position; nil when the varint runs past LAST or past 64 bits.
local function varint(byte, i, last)
  local value, scale = 0, 1
  for _ = 1, 10 do
    if i > last then return nil end
    local b = byte(i)
    i = i + 1
    value = value + (b % 128) * scale
    if b < 128 then return value, i end
    scale = scale * 128
  end
  return nil
end

-- The model_name, model_version and id of the message in [FIRST, LAST]; last occurrence wins,
-- as protobuf parsers do. Returns nil and the reason when it is not a well-formed message.
local function names(byte, text, first, last)
  local name, version, id = "", "", ""
  local i = first
  while i <= last do
    local key
    key, i = varint(byte, i, last)
    if key == nil then return nil, nil, "a field key is cut short" end
    local field, wire = math.floor(key / 8), key % 8
    if field == 0 then return nil, nil, "a field has number 0" end
    if wire == 0 then
      local value
      value, i = varint(byte, i, last)
      if value == nil then return nil, nil, "a varint field is cut short" end
    elseif wire == 1 then
      i = i + 8
    elseif wire == 5 then
      i = i + 4
    elseif wire == 2 then
      local length
      length, i = varint(byte, i, last)
      if length == nil then return nil, nil, "a field length is cut short" end
      if i + length - 1 > last then return nil, nil, "a field is longer than the message" end
      if field == 1 or field == 2 then
        local value = length > 0 and text(i, length) or ""
        if field == 1 then name = value else version = value end
      elseif field == 3 and length <= MAX_ID then
        id = length > 0 and text(i, length) or ""
      end
      i = i + length
    else
      return nil, nil, "a field has wire type " .. wire .. ", which ModelInferRequest never uses"
    end
    if i > last + 1 then return nil, nil, "the last field is cut short" end
  end
  return name, version, nil, id
end

local function printable(value)
  return #value <= MAX_NAME and not value:find("[^ -~]")
end

-- A REST inference names its model and version in its path: the same headers, so the same
-- per-model rules and logs apply (REST routes match the path itself).
local function rest_names(path)
  local name, version = path:match("^/v2/models/([^/?]+)/versions/([^/?]+)/infer$")
  if name == nil then
    name = path:match("^/v2/models/([^/?]+)/infer$")
  end
  return name, version
end

function envoy_on_request(handle)
  local headers = handle:headers()
  for _, internal in ipairs(INTERNAL_HEADERS) do
    headers:remove(internal)
  end
  local path = headers:get(":path")
  if path ~= INFER_PATH then
    local name, version = rest_names(path or "")
    if name ~= nil and printable(name) and (version == nil or printable(version)) then
      headers:replace(MODEL_HEADER, name)
      if version ~= nil then headers:replace(VERSION_HEADER, version) end
    end
    return
  end
  local body = handle:body()
  if body == nil or body:length() == 0 then
    return answer(handle, INVALID_ARGUMENT, "the request carries no ModelInferRequest message (headers only)")
  end
  local size = body:length()
  if size < 5 then
    return answer(handle, INVALID_ARGUMENT, "the request body is not a gRPC message: it is " .. size ..
                  " bytes, shorter than a gRPC frame header")
  end
  local byte, text = reader(body, 0, size - 1)
  local flag = byte(0)
  if flag == 1 then
    return answer(handle, UNIMPLEMENTED, "compressed messages are not accepted by this mesh; send ModelInfer " ..
                  "uncompressed (no grpc-encoding on the call or channel)")
  elseif flag ~= 0 then
    return answer(handle, INVALID_ARGUMENT, "the request body is not a gRPC message (frame flag " .. flag .. ")")
  end
  local length = ((byte(1) * 256 + byte(2)) * 256 + byte(3)) * 256 + byte(4)
  if length ~= size - 5 then
    return answer(handle, INVALID_ARGUMENT, "the gRPC frame says " .. length .. " bytes but the request carries " ..
                  (size - 5) .. ": a truncated message, or more than one on a unary call")
  end
  local name, version, problem, id = names(byte, text, 5, size - 1)
  if name == nil then
    return answer(handle, INVALID_ARGUMENT, "the request is not a valid ModelInferRequest: " .. problem)
  end
  if name == "" then
    return answer(handle, INVALID_ARGUMENT, "model_name is empty: name the model to call")
  end
  if not printable(name) or not printable(version) then
    return answer(handle, NOT_FOUND, "no model or version of that name is served by this mesh (names are " ..
                  "printable ASCII of at most " .. MAX_NAME .. " characters)")
  end
  headers = handle:headers()  -- the handle taken before body() may no longer be used
  headers:replace(MODEL_HEADER, name)
  headers:replace(HOP_HEADER, FRONT_HOP)
  -- The request's own id names it everywhere (Envoy's logs and traces, records of refusals)
  -- unless the client sent x-request-id, which wins, as in the adapters.
  if headers:get(REQUEST_ID_HEADER) == nil and id ~= "" and not id:find("[^ -~]") then
    headers:replace(REQUEST_ID_HEADER, id)
  end
  if version ~= "" then
    headers:replace(VERSION_HEADER, version)
  end
  handle:clearRouteCache()
end
