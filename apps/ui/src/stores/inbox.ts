// The message inbox: the unread count shown in the navigation, and the latest arrivals.
import { create } from "zustand";
import type { MessageRow } from "../generated";
import { backend } from "../backend";

type InboxState = {
  unread: number;
  latest: MessageRow[];
  refresh(): Promise<void>;
  arrived(m: MessageRow): void;
  markRead(ids?: string[]): Promise<void>;
};

export const useInbox = create<InboxState>((set, get) => ({
  unread: 0,
  latest: [],
  refresh: async () => {
    const r = await backend().call("list_messages", { limit: 50 });
    set({ unread: r.unread, latest: r.messages });
  },
  arrived: (m) => {
    if (get().latest.some((x) => x.id === m.id)) return;
    set({ unread: get().unread + (m.status === "unread" ? 1 : 0), latest: [m, ...get().latest].slice(0, 200) });
  },
  markRead: async (ids) => {
    await backend().call("mark_messages_read", ids ? { ids } : {});
    const readSet = ids ? new Set(ids) : null;
    const latest = get().latest.map((m) => (!readSet || readSet.has(m.id) ? { ...m, status: "read" as const } : m));
    set({ latest, unread: latest.filter((m) => m.status === "unread").length });
    await get().refresh();
  },
}));
