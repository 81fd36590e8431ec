from django.contrib import admin

from conversations.models import ApiCall, Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ["position", "role", "status", "text", "stop_reason", "error_code"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "team", "model", "updated_at"]
    list_filter = ["model", "team"]
    search_fields = ["title", "owner__username"]
    list_select_related = ["owner", "team"]
    raw_id_fields = ["owner"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "role", "status", "model", "created_at"]
    list_filter = ["status", "role"]
    raw_id_fields = ["conversation"]
    list_select_related = ["conversation"]


@admin.register(ApiCall)
class ApiCallAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "user",
        "team",
        "model",
        "purpose",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "price_key",
        "pricing",
        "stop_reason",
        "error_type",
    ]
    list_filter = ["model", "purpose", "priced", "batch", "regional", "team"]
    search_fields = ["request_id", "user__username"]
    list_select_related = ["user", "team"]
    date_hierarchy = "created_at"

    @admin.display(description="Priced", boolean=False, ordering="priced")
    def pricing(self, obj: ApiCall) -> str:
        # An unknown model is billed at the fallback row; say so plainly.
        return "yes" if obj.priced else "UNPRICED (fallback rate)"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # The ledger is append-only.
        return False
