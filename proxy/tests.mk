# Read after module.mk (the Makefile includes */*.mk sorted): it needs proxy_SRCS.
# --- fuzzing the request path (tests/fuzz/fuzz-http.c) ----------------------------------
#   make fuzz-http [FUZZ_TIME=300]   libFuzzer with ASan+UBSan (needs clang)
# `make test` runs a short one when clang is there; without clang, the unit test
# tests/unit/proxy/test-fuzz-replay replays the corpus and mutations of it under
# ASan+UBSan.  New inputs go to $(BUILD)/fuzz/corpus-http, never into the committed
# corpus; a crash leaves $(BUILD)/fuzz/crash-*: replay it with $(BUILD)/fuzz/fuzz-http FILE.
FUZZ_CC ?= clang
FUZZ_TIME ?= 60
FUZZ_SMOKE_TIME ?= 10
FUZZ_HTTP := $(BUILD)/fuzz/fuzz-http
FUZZ_HTTP_SRCS := tests/fuzz/fuzz-http.c $(proxy_SRCS) $(common_SRCS) $(llhttp_SRCS)

$(FUZZ_HTTP): $(FUZZ_HTTP_SRCS) $(wildcard proxy/*.h common/*.h)
	@mkdir -p $(@D)
	$(QUIET_LD)$(FUZZ_CC) $(STD) -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -DSP_LIBFUZZER $(INCLUDES) $(proxy_CFLAGS) \
		$(shell pkg-config --cflags $(proxy_PKGS) 2>/dev/null) -o $@ $(filter %.c,$^) \
		$(shell pkg-config --libs $(proxy_PKGS) 2>/dev/null) -lpthread -lm

fuzz-http: $(FUZZ_HTTP)
	@mkdir -p $(BUILD)/fuzz/corpus-http
	$(Q)$(FUZZ_HTTP) -max_total_time=$(FUZZ_TIME) -max_len=16384 -timeout=10 \
		-print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/ \
		$(BUILD)/fuzz/corpus-http tests/fuzz/corpus/http

fuzz-smoke-http:
	$(Q)if command -v $(FUZZ_CC) >/dev/null 2>&1; then \
		echo '== fuzz: http, $(FUZZ_SMOKE_TIME)s of libFuzzer =='; \
		$(MAKE) --no-print-directory fuzz-http FUZZ_TIME=$(FUZZ_SMOKE_TIME) \
			2>&1 | grep -E '^(==|stat::|Done|INFO: -max_total|SUMMARY|ERROR)|Error|error' ; \
		exit $${PIPESTATUS[0]}; \
	else echo '== fuzz: http: no $(FUZZ_CC); the corpus replay unit test covers it =='; fi

fuzz: fuzz-http
test-unit: fuzz-smoke-http
.PHONY: fuzz-http fuzz-smoke-http
