# The Space config parser (README.md front matter), the table-driven YAML helper it
# shares with the SDK templates, and the template loader.
LIBS += spaceconfig
spaceconfig_SRCS := runtimed/conftable.c runtimed/spaceconfig.c runtimed/template.c
spaceconfig_PKGS := yaml-0.1
spaceconfig_DEPS := common

# --- fuzzing (tests/fuzz/fuzz-spaceconfig.c) -------------------------------------------
#   make fuzz-spaceconfig [FUZZ_TIME=300]   libFuzzer with ASan+UBSan (needs clang)
#   make fuzz                               every fuzz target
# `make test` runs a short one (FUZZ_SMOKE_TIME seconds) when clang is there; without
# clang, the unit test tests/unit/spaceconfig/test-fuzz-replay replays the corpus and
# mutations of it under ASan+UBSan.  New inputs go to $(BUILD)/fuzz/, never into the
# committed corpus: copy the interesting ones there by hand (libFuzzer -merge=1).  A crash
# leaves $(BUILD)/fuzz/crash-*; replay it with $(BUILD)/fuzz/fuzz-spaceconfig FILE.
FUZZ_CC ?= clang
FUZZ_TIME ?= 60
FUZZ_SMOKE_TIME ?= 10
FUZZ_SPACECONFIG := $(BUILD)/fuzz/fuzz-spaceconfig
FUZZ_SPACECONFIG_SRCS := tests/fuzz/fuzz-spaceconfig.c $(spaceconfig_SRCS) $(common_SRCS)

$(FUZZ_SPACECONFIG): $(FUZZ_SPACECONFIG_SRCS) $(wildcard runtimed/*.h common/*.h)
	@mkdir -p $(@D)
	$(QUIET_LD)$(FUZZ_CC) $(STD) -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all -DSP_LIBFUZZER $(INCLUDES) \
		$(shell pkg-config --cflags yaml-0.1 2>/dev/null) -o $@ $(filter %.c,$^) \
		$(shell pkg-config --libs yaml-0.1 2>/dev/null) -lm

fuzz-spaceconfig: $(FUZZ_SPACECONFIG)
	@mkdir -p $(BUILD)/fuzz/corpus-spaceconfig
	$(Q)$(FUZZ_SPACECONFIG) -max_total_time=$(FUZZ_TIME) -max_len=8192 \
		-dict=tests/fuzz/spaceconfig.dict -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/ \
		$(BUILD)/fuzz/corpus-spaceconfig tests/fuzz/corpus/spaceconfig

fuzz-smoke-spaceconfig:
	$(Q)if command -v $(FUZZ_CC) >/dev/null 2>&1; then \
		echo '== fuzz: spaceconfig, $(FUZZ_SMOKE_TIME)s of libFuzzer =='; \
		$(MAKE) --no-print-directory fuzz-spaceconfig FUZZ_TIME=$(FUZZ_SMOKE_TIME) \
			2>&1 | grep -E '^(==|stat::|Done|INFO: -max_total|SUMMARY|ERROR)|Error|error' ; \
		exit $${PIPESTATUS[0]}; \
	else echo '== fuzz: spaceconfig: no $(FUZZ_CC); the corpus replay unit test covers it =='; fi

fuzz: fuzz-spaceconfig
test-unit: fuzz-smoke-spaceconfig
.PHONY: fuzz fuzz-spaceconfig fuzz-smoke-spaceconfig
