void rtts_placeholder(void) {}
